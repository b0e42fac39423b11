"""Gallery downloads against a real loopback HTTP server: resume with Range, sha256, concurrency, cancel, offline."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from gallery_server import GalleryServer
from localai.install.jobs import Job, JobCancelled
from localai.install.models.download import DownloadError, fetch_all, fetch_file
from localai.install.models.index import FileSpec

SIZE = 6 * 1024 * 1024 + 123


@pytest.fixture(scope="module")
def blob(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("src") / "blob.bin"
    path.write_bytes(os.urandom(SIZE))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def server(blob):
    with GalleryServer() as srv:
        srv.files["/f/blob.bin"] = blob[0]
        yield srv


def noop(*_):
    return None


def test_dropped_connection_resumes_with_a_range_request_not_a_restart(tmp_path, server, blob):
    server.drop_once["/f/blob.bin"] = 2_500_000
    seen = []
    got = fetch_file(FileSpec(filename="m/blob.bin", uri=server.url + "/f/blob.bin", sha256=blob[1]), tmp_path,
                     progress=lambda n, d, t: seen.append(d), check=noop)
    reqs = server.requests("/f/blob.bin")
    assert [r["status"] for r in reqs] == [200, 206]
    assert reqs[0]["dropped_at"] == 2_500_000
    resumed_at = int(reqs[1]["range"].removeprefix("bytes=").rstrip("-"))
    assert 2_500_000 - 256 * 1024 <= resumed_at <= 2_500_000          # from what reached the disk, not from 0
    assert reqs[1]["if_range"]                                        # guarded by the ETag of the first response
    assert got.downloaded and got.path.read_bytes() == blob[0].read_bytes()
    assert not (tmp_path / "m" / "blob.bin.partial").exists()
    assert max(seen) == SIZE and all(b >= a for a, b in zip(seen, seen[1:]))   # progress never went back to 0


def test_a_partial_left_by_an_earlier_run_is_resumed(tmp_path, server, blob):
    (tmp_path / "blob.bin.partial").write_bytes(blob[0].read_bytes()[:1_000_000])
    fetch_file(FileSpec(filename="blob.bin", uri=server.url + "/f/blob.bin", sha256=blob[1]), tmp_path, progress=noop, check=noop)
    assert [r["range"] for r in server.requests("/f/blob.bin")] == ["bytes=1000000-"]
    assert hashlib.sha256((tmp_path / "blob.bin").read_bytes()).hexdigest() == blob[1]


def test_sha256_mismatch_fails_and_leaves_no_file(tmp_path, server):
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch_file(FileSpec(filename="blob.bin", uri=server.url + "/f/blob.bin", sha256="0" * 64), tmp_path,
                   progress=noop, check=noop)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_with_the_right_sha256_is_not_downloaded_again(tmp_path, server, blob):
    (tmp_path / "blob.bin").write_bytes(blob[0].read_bytes())
    got = fetch_file(FileSpec(filename="blob.bin", uri=server.url + "/f/blob.bin", sha256=blob[1]), tmp_path, progress=noop, check=noop)
    assert not got.downloaded and server.requests("/f/blob.bin") == []


def test_several_files_download_at_once_and_one_failure_removes_the_others(tmp_path, server, blob):
    for i in range(3):
        server.files[f"/f/{i}.bin"] = blob[0]
        server.delay[f"/f/{i}.bin"] = 0.01
    specs = [FileSpec(filename=f"{i}.bin", uri=f"{server.url}/f/{i}.bin", sha256=blob[1]) for i in range(3)]
    fetch_all(specs, tmp_path, progress=noop, check=noop, concurrency=3)
    assert server.max_parallel >= 2
    assert all(hashlib.sha256((tmp_path / f"{i}.bin").read_bytes()).hexdigest() == blob[1] for i in range(3))
    out = tmp_path / "again"
    bad = specs[:2] + [FileSpec(filename="bad.bin", uri=f"{server.url}/f/0.bin", sha256="1" * 64)]
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch_all(bad, out, progress=noop, check=noop, concurrency=3)
    assert [p for p in out.rglob("*") if p.is_file()] == []


def test_cancel_stops_the_download_and_removes_the_partial(tmp_path, server):
    server.delay["/f/blob.bin"] = 0.05
    job = Job(kind="model", name="x")
    started = threading.Event()

    def progress(name, done, total):
        started.set()

    errors = []
    t = threading.Thread(target=lambda: errors.append(pytest.raises(JobCancelled, fetch_file, FileSpec(
        filename="blob.bin", uri=server.url + "/f/blob.bin"), tmp_path, progress=progress, check=job.check_cancelled)))
    t.start()
    assert started.wait(10)
    job.cancel()
    t.join(10)
    assert not t.is_alive() and errors
    assert list(tmp_path.iterdir()) == []


def test_huggingface_uri_offline_fails_with_a_clear_cannot_reach(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_MIRROR", raising=False)
    with pytest.raises(DownloadError) as info:
        fetch_file(FileSpec(filename="g.gguf", uri="huggingface://ggml-org/gemma-3-270m-it-qat-GGUF/gemma-3-270m-it-qat-Q4_0.gguf"),
                   tmp_path, progress=noop, check=noop)
    msg = str(info.value)
    assert "cannot reach huggingface.co" in msg and "/ggml-org/gemma-3-270m-it-qat-GGUF/resolve/main/" in msg
    assert list(tmp_path.iterdir()) == []


def test_an_http_error_is_reported_with_its_status(tmp_path, server):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_file(FileSpec(filename="x.bin", uri=server.url + "/f/missing"), tmp_path, progress=noop, check=noop)
