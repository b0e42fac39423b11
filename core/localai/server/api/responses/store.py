"""Stored responses in the state database (localai.state): the response object, its conversation items, its
stream events, and who is running it.

A response that is running belongs to one replica (``owner``), which renews its lease while it runs. Another
replica answers for it from the database: its state and events as last saved, a cancel as a flag the owner reads
when it renews. A lease that runs out (the owner died) lets any replica fail the response, so none stays
``in_progress`` forever.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from localai.errors import APIError
from localai.server.api.responses.emitter import Emitter
from localai.state import Database
from localai.state.database import Connection

log = logging.getLogger("localai.responses")

INTERRUPTED = "the server stopped while this response was running; it was not finished"
LOST = "the replica running this response stopped; it was not finished"
RUNNING = ("queued", "in_progress")


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes --------------------------------------------------------------------------------

    async def create(self, response: dict[str, Any], context: list[dict[str, Any]], owner: str, lease_until: float) -> None:
        def write(db: Connection) -> None:
            db.execute("INSERT INTO responses (id, created_at, status, resource, context, owner, lease_until) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (response["id"], response["created_at"], response["status"], json.dumps(response),
                        json.dumps(context), owner, lease_until))
            db.executemany("INSERT INTO items (id, response_id, item) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                           [(it["id"], response["id"], json.dumps(it)) for it in context])

        await self.db.run(write)

    def save(self, response: dict[str, Any], events: list[dict[str, Any]], final: bool = False) -> None:
        """Queue the response's current state and its new events; output items become referenceable when ``final``."""
        resource_json = json.dumps(response)
        rows = [(response["id"], ev["sequence_number"], ev["type"], json.dumps(ev)) for ev in events]
        items = [(it["id"], response["id"], json.dumps(it)) for it in response["output"]] if final else []

        def write(db: Connection) -> None:
            db.execute("UPDATE responses SET status = ?, resource = ? WHERE id = ?", (response["status"], resource_json, response["id"]))
            db.executemany("INSERT INTO events (response_id, seq, type, data) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)
            db.executemany("INSERT INTO items (id, response_id, item) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", items)

        self.db.submit(write)

    async def flush(self) -> None:
        """Wait until every queued write has landed."""
        await self.db.flush()

    async def delete(self, rid: str) -> bool:
        def delete(db: Connection) -> bool:
            found = db.execute("DELETE FROM responses WHERE id = ?", (rid,)).rowcount > 0
            db.execute("DELETE FROM events WHERE response_id = ?", (rid,))
            db.execute("DELETE FROM items WHERE response_id = ?", (rid,))
            return bool(found)

        return await self.db.run(delete)

    async def request_cancel(self, rid: str) -> None:
        """Ask the replica running ``rid`` to cancel it (it reads the flag when it renews its lease)."""
        await self.db.run(lambda db: db.execute("UPDATE responses SET cancel_requested = 1 WHERE id = ?", (rid,)))

    async def renew(self, owner: str, ids: list[str], lease_until: float) -> list[str]:
        """Extend ``owner``'s leases on ``ids``; returns those another replica asked to cancel."""
        if not ids:
            return []

        def renew(db: Connection) -> list[str]:
            marks = ", ".join("?" * len(ids))
            db.execute(f"UPDATE responses SET lease_until = ? WHERE owner = ? AND id IN ({marks})", (lease_until, owner, *ids))
            rows = db.execute(f"SELECT id FROM responses WHERE cancel_requested = 1 AND id IN ({marks})", ids).fetchall()
            return [r[0] for r in rows]

        return await self.db.run(renew)

    async def fail_unowned(self, now: float | None = None) -> list[str]:
        """Fail the responses left running whose lease ran out at ``now`` (all of them when ``now`` is None: the
        embedded database at start-up, where no other process can own one), closing their items and event streams."""

        def fail(db: Connection) -> list[str]:
            if now is None:
                rows = db.execute("SELECT id, resource FROM responses WHERE status IN (?, ?)", RUNNING).fetchall()
            else:
                rows = db.execute("SELECT id, resource FROM responses WHERE status IN (?, ?) AND "
                                  "(lease_until IS NULL OR lease_until < ?)", (*RUNNING, now)).fetchall()
            for rid, text in rows:
                last = db.execute("SELECT MAX(seq) FROM events WHERE response_id = ?", (rid,)).fetchone()[0]
                emitter = Emitter.resume(json.loads(text), 0 if last is None else last + 1)
                reason = INTERRUPTED if now is None else LOST
                events = emitter.fail(APIError("server", reason, code="server_restarted"))
                db.execute("UPDATE responses SET status = ?, resource = ? WHERE id = ? AND status IN (?, ?)",
                           (emitter.response["status"], json.dumps(emitter.response), rid, *RUNNING))
                db.executemany("INSERT INTO events (response_id, seq, type, data) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                               [(rid, ev["sequence_number"], ev["type"], json.dumps(ev)) for ev in events])
            return [r[0] for r in rows]

        return await self.db.run(fail)

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, rid: str) -> dict[str, Any] | None:
        row = await self.db.run(lambda db: db.execute("SELECT resource FROM responses WHERE id = ?", (rid,)).fetchone())
        return json.loads(row[0]) if row else None

    async def context(self, rid: str) -> list[dict[str, Any]]:
        row = await self.db.run(lambda db: db.execute("SELECT context FROM responses WHERE id = ?", (rid,)).fetchone())
        return json.loads(row[0]) if row else []

    async def item(self, item_id: str) -> dict[str, Any] | None:
        row = await self.db.run(lambda db: db.execute("SELECT item FROM items WHERE id = ?", (item_id,)).fetchone())
        return json.loads(row[0]) if row else None

    async def events_after(self, rid: str, after: int) -> list[tuple[int, str, str]]:
        """``(sequence number, type, json)`` of the stored events numbered above ``after``, in order."""
        rows = await self.db.run(lambda db: db.execute(
            "SELECT seq, type, data FROM events WHERE response_id = ? AND seq > ? ORDER BY seq", (rid, after)).fetchall())
        return [(int(seq), t, d) for seq, t, d in rows]
