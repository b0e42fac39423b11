"""Where localai keeps what it can rebuild (built wheels, backend environments, converted checkpoints), and the
content hash those caches are keyed by. One place, so every cache honours ``XDG_CACHE_HOME`` the same way."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/localai``, else ``~/.cache/localai``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "localai"


def sha256_of(path: Path | str, check: Callable[[], None] | None = None) -> str:
    """The file's sha256 in hex, read a MiB at a time; ``check`` runs before each MiB (a cancel point)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            if check:
                check()
            digest.update(chunk)
    return digest.hexdigest()
