"""The code's structure, checked like behaviour: no import circle between sibling modules or packages (the
import contracts in pyproject.toml, read by import-linter), ruff's rules and mypy on the core. A new circle, an
unannotated function or a blind ``except`` fails the run like a broken feature would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from localai.paths import cache_root

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_no_import_circles() -> None:
    r = run(str(BIN / "lint-imports"), "--no-cache", "pyproject.toml")
    assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout[-4000:] + r.stderr[-2000:]


def test_ruff_is_clean() -> None:
    r = run(sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_mypy_is_clean_on_the_core() -> None:
    # mypy's incremental cache, kept between runs and checkouts: an entry is reused only while its module's
    # content hash and its dependencies' interfaces are unchanged, so a warm run checks only what changed
    # (about 4 s against 26 s on 2 cores) and still fails on a new error.
    r = run(sys.executable, "-m", "mypy", "--cache-dir", str(cache_root() / "mypy" / sys.version.split()[0]))
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout[-6000:] + r.stderr[-2000:]
