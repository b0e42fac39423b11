"""Generated files (images) the server hands out by URL: unguessable names, cleaned up by age and count.

Files live in one folder (``--generated-content-path``); each save prunes files older than ``max_age``
seconds and, beyond ``max_files``, the oldest ones, so the folder cannot grow without bound.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path

log = logging.getLogger("localai.server.generated")

NAME = re.compile(r"^[A-Za-z0-9_-]{16,64}\.png$")


class GeneratedStore:
    def __init__(self, path: Path, max_age: float | None = 24 * 3600, max_files: int | None = 1000) -> None:
        self.path = path
        self.max_age = max_age if max_age and max_age > 0 else None
        self.max_files = max_files if max_files and max_files > 0 else None
        self._lock = threading.Lock()

    def save_png(self, data: bytes) -> str:
        """Store ``data`` under a fresh unguessable name; returns the file name."""
        self.path.mkdir(parents=True, exist_ok=True)
        name = secrets.token_urlsafe(24) + ".png"
        tmp = self.path / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.path / name)
        self.cleanup(keep=name)
        return name

    def file(self, name: str) -> Path | None:
        """The stored file called ``name``, or ``None`` (also for names we never hand out)."""
        if not NAME.match(name):
            return None
        path = self.path / name
        return path if path.is_file() else None

    def cleanup(self, keep: str | None = None) -> int:
        """Delete expired files, then the oldest beyond ``max_files``; returns how many went."""
        if not self.path.is_dir():
            return 0
        with self._lock:
            files = []
            for entry in os.scandir(self.path):
                if entry.is_file() and NAME.match(entry.name):
                    try:
                        files.append((entry.stat().st_mtime, entry.name))
                    except FileNotFoundError:
                        continue
            files.sort()
            doomed = []
            if self.max_age is not None:
                cutoff = time.time() - self.max_age
                doomed = [n for t, n in files if t < cutoff and n != keep]
            left = [n for _, n in files if n not in set(doomed)]
            if self.max_files is not None and len(left) > self.max_files:
                doomed += [n for n in left[: len(left) - self.max_files] if n != keep]
            for name in doomed:
                try:
                    (self.path / name).unlink()
                except FileNotFoundError:
                    pass
            if doomed:
                log.info("removed %d old generated file(s) from %s", len(doomed), self.path)
            return len(doomed)
