"""One state database, SQLite or PostgreSQL, behind the same few calls.

All work runs on one dedicated thread with one connection, calls in submission order: the event loop never blocks,
and writes that are not awaited still land in order. SQL is written once, in the dialect both accept (``?``
placeholders, which PostgreSQL's driver gets as ``%s``; ``ON CONFLICT DO NOTHING``).

PostgreSQL can go away (a restart, a network cut). A call made then fails with :class:`StoreUnavailable`, a 503 in
each API's shape, and the next call connects again by itself. A write that was not awaited is kept and replayed
first once the database answers again, so a response's state and events are never lost or reordered by an outage.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import re
import socket
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from localai.errors import APIError
from localai.state.schema import MIGRATIONS

log = logging.getLogger("localai.state")

T = TypeVar("T")

SQLITE_FILE = "responses.sqlite3"  # under --data-path (the name from before other state joined it)
_MIGRATION_LOCK = 7_214_006  # PostgreSQL advisory lock id: replicas starting together migrate one at a time


class StoreUnavailable(APIError):
    def __init__(self, detail: str) -> None:
        super().__init__("unavailable", f"the state database is unavailable: {detail}; retry shortly",
                         code="state_store_unavailable", retry_after=1)
        self.detail = detail


def replica_id() -> str:
    """This server process among the replicas sharing a database: what its running work is recorded under."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def redact(url: str) -> str:
    """``url`` without its password, for logs and errors."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


class Connection:
    """The calls our SQL needs, the same on both databases."""

    def __init__(self, raw: Any, postgres: bool) -> None:
        self.raw = raw
        self.postgres = postgres

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """A cursor: ``fetchone``, ``fetchall``, ``rowcount``."""
        return self.raw.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            self.raw.cursor().executemany(self._sql(sql), rows)


class Database:
    def __init__(self, url: str | None, data_path: Path) -> None:
        self.url = url or ""
        self.postgres = self.url.startswith(("postgresql://", "postgres://"))
        if self.url and not self.postgres and not self.url.startswith("sqlite:///"):
            raise ValueError(f"--database-url {redact(self.url)!r}: expected postgresql://... or sqlite:///PATH")
        self.path = Path(self.url[len("sqlite:///"):]) if self.url.startswith("sqlite:///") else data_path / SQLITE_FILE
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-db")
        self._raw: Any = None
        self._retry: collections.deque[Callable[[Connection], Any]] = collections.deque()
        self._broken: str | None = None  # why the last connection attempt or call failed (for logs, /readyz)
        self._closed = False

    def describe(self) -> str:
        return f"PostgreSQL {redact(self.url)}" if self.postgres else f"SQLite {self.path}"

    # -- connection (on the database thread) -----------------------------------------------------

    def _connect(self) -> Any:
        if self.postgres:
            try:
                import psycopg
            except ImportError as exc:
                raise RuntimeError("--database-url postgresql://... needs the PostgreSQL driver: "
                                   "pip install 'localai-core[postgres]' (psycopg 3)") from exc
            try:
                return psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            except psycopg.Error as exc:
                raise StoreUnavailable(f"cannot connect to {redact(self.url)}: {' '.join(str(exc).split())}") from exc
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            raw = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise RuntimeError(f"cannot open the state database {self.path}: {exc} (set --data-path / LOCALAI_DATA_PATH)") from exc
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.isolation_level = "DEFERRED"  # a transaction per ``with`` block
        return raw

    def _transaction(self, fn: Callable[[Connection], T]) -> T:
        conn = Connection(self._raw, self.postgres)
        if self.postgres:
            with self._raw.transaction():
                return fn(conn)
        with self._raw:
            return fn(conn)

    def _call(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a transaction, connecting first if needed and replaying the writes an outage held back.

        A connection that was already open may have died since its last use (the server restarted): the first
        failure on it is retried once on a new connection, so only a database that is down now fails the call."""
        fresh = self._raw is None or (self.postgres and (self._raw.closed or self._raw.broken))
        if fresh:
            self._raw = self._connect()
            if self._broken is not None:
                log.warning("state database %s is back (it was unavailable: %s)", self.describe(), self._broken)
                self._broken = None
        try:
            while self._retry:
                try:
                    self._transaction(self._retry[0])
                except Exception as exc:  # noqa: BLE001 - one bad write must not block every later call
                    if self.postgres and _lost(exc, self._raw):
                        raise
                    log.exception("state database: a write held back by an outage failed when replayed; dropped")
                self._retry.popleft()
            return self._transaction(fn)
        except Exception as exc:
            if not (self.postgres and _lost(exc, self._raw)):
                raise
            self._close_raw()
            if fresh:
                raise StoreUnavailable(" ".join(str(exc).split()) or type(exc).__name__) from exc
            return self._call(fn)  # once: the connection is now fresh

    def _close_raw(self) -> None:
        try:
            if self._raw is not None:
                self._raw.close()
        except Exception:  # noqa: BLE001 - already broken
            pass
        self._raw = None

    def _migrate(self, conn: Connection) -> list[int]:
        if self.postgres:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        have = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        applied = []
        for version, statements in MIGRATIONS:
            if version > have:
                for sql in statements:
                    conn.execute(sql)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                applied.append(version)
        return applied

    # -- the event loop's side ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and bring the schema up to date (refusing to start if the database cannot be reached)."""
        applied = await self.run(self._migrate)
        log.info("state database: %s%s", self.describe(),
                 f" (schema versions {', '.join(map(str, applied))} applied)" if applied else "")

    def prepare(self) -> None:
        """:meth:`open` before any event loop runs (the CLI's check at start-up); closes the connection after."""
        try:
            self._pool.submit(self._call, self._migrate).result()
        finally:
            self._pool.submit(self._close_raw).result()
            self._pool.shutdown(wait=True)

    async def close(self) -> None:
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close_raw)
        if self._retry:
            log.warning("state database %s: %d write(s) held back by an outage could not be made before shutdown",
                        self.describe(), len(self._retry))
        self._pool.shutdown(wait=True)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._guarded, fn)

    def _guarded(self, fn: Callable[[Connection], T]) -> T:
        try:
            return self._call(fn)
        except StoreUnavailable as exc:
            if self._broken is None:
                log.error("state database %s unavailable: %s", self.describe(), exc.detail)
            self._broken = exc.detail
            raise

    def submit(self, fn: Callable[[Connection], Any]) -> None:
        """Queue a write without waiting for it: ordered after everything queued before, kept and replayed if the
        database is unavailable when its turn comes."""

        def write() -> None:
            try:
                self._guarded(fn)
            except StoreUnavailable:
                self._retry.append(fn)  # replayed, before anything newer, once the database answers
            except Exception:  # noqa: BLE001 - a write that fails for its own reasons must not block the ones after
                log.exception("state database write failed")

        try:
            if self._closed:
                raise RuntimeError("closed")
            self._pool.submit(write)
        except RuntimeError:  # a job thread still reporting while the server shuts down: nothing is listening
            log.debug("state database closed: a late write is dropped")

    async def flush(self) -> None:
        """Wait until every queued write has landed (raises :class:`StoreUnavailable` while some cannot)."""
        await self.run(lambda conn: None)

    def flush_blocking(self) -> None:
        """:meth:`flush` for a thread outside the event loop (a synchronous route)."""
        self._pool.submit(self._guarded, lambda conn: None).result()

    async def check(self) -> str | None:
        """``None`` when the database answers, else why not (``/readyz``)."""
        try:
            await asyncio.wait_for(self.run(lambda conn: conn.execute("SELECT 1").fetchone()), timeout=5)
        except StoreUnavailable as exc:
            return exc.message
        except asyncio.TimeoutError:
            return f"the state database {self.describe()} did not answer within 5 s"
        return None


def _lost(exc: Exception, raw: Any) -> bool:
    """Whether ``exc`` means the PostgreSQL connection is gone (rather than a bad statement)."""
    import psycopg

    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) or raw is None or raw.closed or raw.broken
