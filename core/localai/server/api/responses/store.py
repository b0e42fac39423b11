"""Stored responses in SQLite: the response object, its conversation items and its stream events.

All database work runs on one dedicated thread (one connection, calls in submission order), so the
event loop never blocks and writes that are not awaited still land in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from localai.errors import APIError
from localai.server.api.responses.emitter import Emitter

log = logging.getLogger("localai.responses")

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    resource TEXT NOT NULL,
    context TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    response_id TEXT NOT NULL,
    item TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_response ON items(response_id);
CREATE TABLE IF NOT EXISTS events (
    response_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (response_id, seq)
);
"""

INTERRUPTED = "the server stopped while this response was running; it was not finished"


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="responses-db")
        self._db: sqlite3.Connection | None = None

    # -- plumbing ------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._db is not None, "store is not open"
        with self._db:
            return fn(self._db)

    def submit(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        """Queue a write without waiting for it (ordered after everything queued before)."""
        future = self._pool.submit(self._call, fn)
        def report(f: Any) -> None:
            if f.exception() is not None:
                log.error("responses store write failed: %s", f.exception())

        future.add_done_callback(report)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise RuntimeError(f"cannot open the responses store {self.path}: {exc} (set --data-path / LOCALAI_DATA_PATH)") from exc
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        db.isolation_level = "DEFERRED"  # transactions per ``with`` block ("" means the same to sqlite3)
        self._db = db

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._open)

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._pool, close)
        self._pool.shutdown(wait=True)

    # -- writes --------------------------------------------------------------------------------

    async def create(self, response: dict[str, Any], context: list[dict[str, Any]]) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO responses (id, created_at, status, resource, context) VALUES (?, ?, ?, ?, ?)",
                       (response["id"], response["created_at"], response["status"], json.dumps(response), json.dumps(context)))
            db.executemany("INSERT OR IGNORE INTO items (id, response_id, item) VALUES (?, ?, ?)",
                           [(it["id"], response["id"], json.dumps(it)) for it in context])

        await self._run(write)

    def save(self, response: dict[str, Any], events: list[dict[str, Any]], final: bool = False) -> None:
        """Queue the response's current state and its new events; output items become referenceable when ``final``."""
        resource_json = json.dumps(response)
        rows = [(response["id"], ev["sequence_number"], ev["type"], json.dumps(ev)) for ev in events]
        items = [(it["id"], response["id"], json.dumps(it)) for it in response["output"]] if final else []

        def write(db: sqlite3.Connection) -> None:
            db.execute("UPDATE responses SET status = ?, resource = ? WHERE id = ?", (response["status"], resource_json, response["id"]))
            db.executemany("INSERT OR IGNORE INTO events (response_id, seq, type, data) VALUES (?, ?, ?, ?)", rows)
            db.executemany("INSERT OR IGNORE INTO items (id, response_id, item) VALUES (?, ?, ?)", items)

        self.submit(write)

    async def flush(self) -> None:
        """Wait until every queued write has landed."""
        await self._run(lambda db: None)

    async def delete(self, rid: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            found = db.execute("DELETE FROM responses WHERE id = ?", (rid,)).rowcount > 0
            db.execute("DELETE FROM events WHERE response_id = ?", (rid,))
            db.execute("DELETE FROM items WHERE response_id = ?", (rid,))
            return found

        return await self._run(delete)

    async def recover(self) -> list[str]:
        """Fail responses a previous process left queued or in progress, closing their items and event streams."""

        def recover(db: sqlite3.Connection) -> list[str]:
            rows = db.execute("SELECT id, resource FROM responses WHERE status IN ('queued', 'in_progress')").fetchall()
            for rid, text in rows:
                last = db.execute("SELECT MAX(seq) FROM events WHERE response_id = ?", (rid,)).fetchone()[0]
                emitter = Emitter.resume(json.loads(text), 0 if last is None else last + 1)
                events = emitter.fail(APIError("server", INTERRUPTED, code="server_restarted"))
                db.execute("UPDATE responses SET status = ?, resource = ? WHERE id = ?",
                           (emitter.response["status"], json.dumps(emitter.response), rid))
                db.executemany("INSERT INTO events (response_id, seq, type, data) VALUES (?, ?, ?, ?)",
                               [(rid, ev["sequence_number"], ev["type"], json.dumps(ev)) for ev in events])
            return [r[0] for r in rows]

        return await self._run(recover)

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, rid: str) -> dict[str, Any] | None:
        row = await self._run(lambda db: db.execute("SELECT resource FROM responses WHERE id = ?", (rid,)).fetchone())
        return json.loads(row[0]) if row else None

    async def context(self, rid: str) -> list[dict[str, Any]]:
        row = await self._run(lambda db: db.execute("SELECT context FROM responses WHERE id = ?", (rid,)).fetchone())
        return json.loads(row[0]) if row else []

    async def item(self, item_id: str) -> dict[str, Any] | None:
        row = await self._run(lambda db: db.execute("SELECT item FROM items WHERE id = ?", (item_id,)).fetchone())
        return json.loads(row[0]) if row else None

    async def events_after(self, rid: str, after: int) -> list[tuple[str, str]]:
        """``(type, json)`` of the stored events numbered above ``after``, in order."""
        return await self._run(lambda db: db.execute(
            "SELECT type, data FROM events WHERE response_id = ? AND seq > ? ORDER BY seq", (rid, after)).fetchall())

