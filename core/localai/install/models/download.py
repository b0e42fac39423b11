"""Downloading gallery files: streamed to ``<file>.partial``, resumed with HTTP Range, sha256-checked, moved atomically.

A dropped connection resumes from the bytes already on disk (``Range: bytes=N-``, guarded by ``If-Range``); a
server that ignores the range restarts the file. A sha256 mismatch or a user's cancel removes the partial file;
a network failure keeps it, so running the install again resumes it (as LocalAI does).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from localai.install.models.index import FileSpec
from localai.install.models.paths import PARTIAL_SUFFIX, target_path
from localai.install.models.sources import SourceError, auth_headers, client, is_url, resolve, unreachable
from localai.paths import sha256_of

log = logging.getLogger("localai.install.models.download")

CHUNK = 1 << 20
RETRIES = 5
Progress = Callable[[str, int, "int | None"], None]   # file name, bytes on disk, total (None: unknown)
Check = Callable[[], None]                              # raises to stop (a cancelled job)

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


class DownloadError(Exception):
    """A file could not be downloaded or failed verification; the message names the file and why.

    ``resumable``: the partial file was kept and installing again resumes it.
    """

    def __init__(self, message: str, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable


class _Digest:
    """A sha256 that can start over (when a server will not resume)."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def reset(self) -> None:
        self.h = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self.h.update(data)

    def hexdigest(self) -> str:
        return self.h.hexdigest()


@dataclass
class Fetched:
    spec: FileSpec
    path: Path
    downloaded: bool   # False: already present (and verified when a sha256 was given)
    size: int


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` -> (100, 1000); ``bytes */1000`` -> (None, 1000)."""
    m = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _write_chunks(chunks: Iterable[bytes], f: BinaryIO, start: int, hasher: _Digest, check: Check) -> Iterator[int]:
    """Write ``chunks`` to ``f`` and the hasher, checking for a cancel before each one, then fsync the file.

    Yields the bytes on disk (from ``start``) after each chunk, so a caller reports progress and, when the
    source breaks off mid-way, still knows how far it got.
    """
    done = start
    for chunk in chunks:
        check()
        f.write(chunk)
        hasher.update(chunk)
        done += len(chunk)
        yield done
    f.flush()
    os.fsync(f.fileno())


def _copy_local(src: Path, partial: Path, name: str, hasher: _Digest, progress: Progress, check: Check) -> None:
    if not src.is_file():
        raise DownloadError(f"{name}: source file {src} does not exist")
    total = src.stat().st_size
    with open(src, "rb") as fin, open(partial, "wb") as fout:
        for done in _write_chunks(iter(lambda: fin.read(CHUNK), b""), fout, 0, hasher, check):
            progress(name, done, total)


def _fetch_http(url: str, partial: Path, name: str, hasher: _Digest, progress: Progress, check: Check,
                http: httpx.Client) -> None:
    offset = partial.stat().st_size if partial.exists() else 0
    validator: str | None = None
    failures = 0
    ever_connected = False
    while True:
        check()
        headers = auth_headers(url)
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        start_offset = offset
        try:
            with http.stream("GET", url, headers=headers) as resp:
                ever_connected = True
                if resp.status_code == 416 and offset:
                    _, total = _content_range(resp.headers.get("content-range"))
                    if total == offset:
                        return
                    log.warning("%s: server refused to resume at byte %d; starting over", name, offset)
                    partial.unlink(missing_ok=True)
                    offset, validator = 0, None
                    hasher.reset()
                    continue
                if resp.status_code >= 400:
                    raise DownloadError(f"{name}: {url} answered HTTP {resp.status_code}")
                if offset and resp.status_code == 200:
                    log.warning("%s: server ignored the range request; downloading it again from the start", name)
                    offset = 0
                    hasher.reset()
                elif resp.status_code == 206:
                    start, _ = _content_range(resp.headers.get("content-range"))
                    if start != offset:
                        raise DownloadError(f"{name}: server resumed at byte {start}, expected {offset}")
                    log.info("%s: resuming at byte %d", name, offset)
                length = resp.headers.get("content-length")
                total = offset + int(length) if length and length.isdigit() else _content_range(resp.headers.get("content-range"))[1]
                validator = resp.headers.get("etag") or resp.headers.get("last-modified") or validator
                with open(partial, "ab" if offset else "wb") as f:
                    for offset in _write_chunks(resp.iter_bytes(), f, offset, hasher, check):
                        progress(name, offset, total)
                if total is not None and offset < total:
                    raise httpx.RemoteProtocolError(f"connection closed at byte {offset} of {total}")
                return
        except httpx.TransportError as exc:
            failures = 1 if offset > start_offset else failures + 1
            limit = RETRIES if ever_connected else 2
            if failures > limit:
                kept = f"; {offset} bytes kept in {partial.name}, run the install again to resume" if offset else ""
                raise DownloadError(f"{name}: {unreachable(url, exc)}{kept}", resumable=offset > 0) from exc
            log.warning("%s: download interrupted at byte %d (%s); retrying with a Range request", name, offset, exc)
            time.sleep(min(0.25 * 2 ** (failures - 1), 5.0))


def fetch_file(spec: FileSpec, models_path: Path, *, progress: Progress, check: Check,
               http: httpx.Client | None = None) -> Fetched:
    """Put ``spec`` at its place in ``models_path`` (skipped when already there with the right sha256)."""
    target = target_path(models_path, spec.filename)
    lock = _lock_for(target)
    while not lock.acquire(timeout=0.5):  # another install is fetching the same file: wait, still cancellable
        check()
    try:
        return _fetch_locked(spec, target, progress=progress, check=check, http=http)
    finally:
        lock.release()


def _fetch_locked(spec: FileSpec, target: Path, *, progress: Progress, check: Check, http: httpx.Client | None) -> Fetched:
    if target.exists():
        if not spec.sha256:
            size = target.stat().st_size
            progress(spec.filename, size, size)
            return Fetched(spec, target, False, size)
        if sha256_of(target, check) == spec.sha256:
            size = target.stat().st_size
            progress(spec.filename, size, size)
            return Fetched(spec, target, False, size)
        log.warning("%s exists with another sha256; downloading it again", spec.filename)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    try:
        source = resolve(spec.uri)
    except SourceError as exc:
        raise DownloadError(f"{spec.filename}: {exc}") from exc
    hasher = _Digest()
    keep_partial = False
    try:
        if is_url(source):
            if partial.exists():
                with open(partial, "rb") as f:
                    while chunk := f.read(CHUNK):
                        hasher.update(chunk)
            own = http is None
            http_client = http or client()
            try:
                _fetch_http(source, partial, spec.filename, hasher, progress, check, http_client)
            finally:
                if own:
                    http_client.close()
        else:
            _copy_local(Path(source), partial, spec.filename, hasher, progress, check)
        digest = hasher.hexdigest()
        if spec.sha256 and digest != spec.sha256:
            raise DownloadError(f"{spec.filename}: sha256 mismatch: expected {spec.sha256}, got {digest}; file removed")
        os.replace(partial, target)
    except DownloadError as exc:
        keep_partial = exc.resumable
        raise
    finally:
        if not keep_partial:
            partial.unlink(missing_ok=True)
    log.info("downloaded %s (%d bytes%s)", spec.filename, target.stat().st_size, ", sha256 verified" if spec.sha256 else "")
    return Fetched(spec, target, True, target.stat().st_size)


def fetch_all(files: list[FileSpec], models_path: Path, *, progress: Progress, check: Check,
              concurrency: int = 4) -> list[Fetched]:
    """Several files at once; the first failure stops the others and is raised."""
    if not files:
        return []
    stop = threading.Event()

    def guarded() -> None:
        if stop.is_set():
            raise DownloadError("stopped: another file of this model failed")
        check()

    done: list[Fetched] = []
    with client() as http, ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(files))),
                                              thread_name_prefix="gallery-dl") as pool:
        futures = [pool.submit(fetch_file, f, models_path, progress=progress, check=guarded, http=http) for f in files]
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() for f in finished):
            stop.set()
        wait(futures)
        first: BaseException | None = None
        for fut in futures:
            exc = fut.exception()
            if exc is None:
                done.append(fut.result())
            elif first is None or (isinstance(first, DownloadError) and str(first).startswith("stopped:")):
                first = exc
        if first is not None:
            if isinstance(first, DownloadError) and first.resumable:
                raise first  # keep what is on disk: installing again resumes
            for fetched in done:
                if fetched.downloaded:
                    fetched.path.unlink(missing_ok=True)  # a failed install leaves no file behind
            raise first
    return done
