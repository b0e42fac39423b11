"""Gallery download throughput: localai's downloader against a plain streamed copy, on the same loopback server.

Run from the repository root::

    .venv/bin/python bench/gallery_download.py            # the default Gemma GGUF (~253 MB), 3 rounds
    .venv/bin/python bench/gallery_download.py --rounds 5 --file /path/to/big.bin

Targets, one at a time, each into an empty folder:
  * baseline: ``httpx`` stream written to disk, nothing else (what a bare ``curl -o`` does);
  * localai: ``fetch_file`` (``.partial`` file, sha256 while streaming, fsync, atomic rename);
  * localai-resume: the same, with the connection dropped once at half the file (resumed with Range).
Prints MB/s per round, medians, and each target's ratio to the baseline.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from gallery_server import GalleryServer  # noqa: E402
from localai.install.models.download import fetch_file  # noqa: E402
from localai.install.models.index import FileSpec  # noqa: E402
from localai.testing import default_gguf  # noqa: E402


def baseline(url: str, out: Path) -> None:
    with httpx.Client() as c, c.stream("GET", url) as r, open(out / "f.bin", "wb") as f:
        for chunk in r.iter_bytes():
            f.write(chunk)


def localai(url: str, out: Path, sha: str) -> None:
    fetch_file(FileSpec(filename="f.bin", uri=url, sha256=sha), out, progress=lambda *a: None, check=lambda: None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", type=Path, default=None, help="file to serve (default: the Gemma 3 270M GGUF)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    src = args.file or default_gguf()
    size = src.stat().st_size
    h = hashlib.sha256()
    with open(src, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    sha = h.hexdigest()
    results: dict[str, list[float]] = {"baseline": [], "localai": [], "localai-resume": []}
    with GalleryServer() as srv:
        srv.files["/f.bin"] = src
        url = srv.url + "/f.bin"
        for rnd in range(args.rounds):
            for name in results:
                out = Path(tempfile.mkdtemp(prefix="bench-gallery-"))
                try:
                    if name == "localai-resume":
                        srv.drop_once["/f.bin"] = size // 2
                    t0 = time.perf_counter()
                    baseline(url, out) if name == "baseline" else localai(url, out, sha)
                    dt = time.perf_counter() - t0
                    assert (out / "f.bin").stat().st_size == size
                finally:
                    shutil.rmtree(out, ignore_errors=True)
                mbps = size / dt / 1e6
                results[name].append(mbps)
                print(f"round {rnd + 1} {name:15s} {mbps:8.1f} MB/s ({dt:.2f} s)")
        resumed = [r for r in srv.log if r["range"]]
        print(f"range requests seen by the server: {len(resumed)} (one per resumed round)")
    base = statistics.median(results["baseline"])
    print(f"\nfile {src.name}: {size / 1e6:.1f} MB, {args.rounds} rounds, medians:")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"  {name:15s} {med:8.1f} MB/s   ratio to baseline {med / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
