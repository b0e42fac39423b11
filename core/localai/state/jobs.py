"""Install jobs as every replica sees them.

A job's work runs on the replica that started it (localai.install.jobs); its status (LocalAI's gallery op JSON) is
mirrored into the state database as it changes, so a poll, a listing or a cancel can land on any replica. A cancel
asked through another replica is a flag the owner reads when it renews its lease; a job whose owner stopped
renewing is marked failed by whichever replica notices, so no job reads "processing" forever.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from localai.install.jobs import Job, JobRegistry
from localai.state.database import Connection, Database, StoreUnavailable
from localai.state.leases import LEASE, keep

log = logging.getLogger("localai.state")

THROTTLE = 0.5  # seconds between two mirrored progress updates of one job (its end is always written)
KEEP = 7 * 24 * 3600.0  # seconds a finished job stays listed
LOST = "the replica running this job stopped before it finished"

_UPSERT = ("INSERT INTO jobs (uuid, kind, data, owner, lease_until, processed, cancel_requested) "
           "VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT (uuid) DO UPDATE SET data = excluded.data, "
           "lease_until = excluded.lease_until, processed = excluded.processed")


class JobMirror:
    def __init__(self, db: Database, owner: str) -> None:
        self.db = db
        self.owner = owner
        self._written: dict[str, tuple[float, str]] = {}  # uuid -> (when, message) last mirrored
        self._lock = threading.Lock()

    def changed(self, job: Job) -> None:
        """A job's fields changed (called from its thread): mirror it, progress at most every ``THROTTLE`` s."""
        data = job.to_dict()
        now = time.monotonic()
        with self._lock:
            last = self._written.get(job.uuid)
            if last is not None and not data["processed"] and data["message"] == last[1] and now - last[0] < THROTTLE:
                return
            self._written[job.uuid] = (now, data["message"])
            if data["processed"]:
                self._written.pop(job.uuid, None)
        row = (job.uuid, job.kind, json.dumps(data), self.owner, time.time() + LEASE, int(data["processed"]))
        self.db.submit(lambda db: db.execute(_UPSERT, row))

    async def published(self) -> None:
        """Wait until the jobs' changes so far are in the database (a new job's uuid is then known to every replica
        before the client that started it can poll another); during an outage they follow when it ends."""
        try:
            await self.db.flush()
        except StoreUnavailable:
            pass

    def published_blocking(self) -> None:
        """:meth:`published` for a synchronous route (run on a thread)."""
        try:
            self.db.flush_blocking()
        except StoreUnavailable:
            pass

    async def get(self, registry: JobRegistry, uuid: str) -> dict[str, Any] | None:
        """A job's status: this replica's own at first hand, another's from the database."""
        job = registry.get(uuid)
        if job is not None:
            return job.to_dict()
        row = await self.db.run(lambda db: db.execute("SELECT data FROM jobs WHERE uuid = ?", (uuid,)).fetchone())
        return json.loads(row[0]) if row else None

    async def all(self, registry: JobRegistry, kind: str) -> dict[str, dict[str, Any]]:
        """Every job of ``kind`` any replica ran (its own overriding the mirror, which may lag)."""
        rows = await self.db.run(lambda db: db.execute("SELECT uuid, data FROM jobs WHERE kind = ?", (kind,)).fetchall())
        out = {uuid: json.loads(data) for uuid, data in rows}
        out.update({job.uuid: job.to_dict() for job in registry.list(kind)})
        return out

    async def cancel(self, registry: JobRegistry, uuid: str) -> bool | None:
        """Cancel a job wherever it runs: ``True`` if asked, ``False`` if it already finished, ``None`` if unknown."""
        job = registry.get(uuid)
        if job is not None:
            return job.cancel()
        current = await self.get(registry, uuid)
        if current is None:
            return None
        if current["processed"]:
            return False
        await self.db.run(lambda db: db.execute("UPDATE jobs SET cancel_requested = 1 WHERE uuid = ?", (uuid,)))
        return True

    async def tend(self, registry: JobRegistry) -> None:
        """Until cancelled: renew this replica's leases, pass on cancels asked elsewhere, fail jobs whose owner stopped."""

        async def upkeep() -> None:
            running = [job.uuid for job in registry.list() if not job.processed]
            for uuid in await self.db.run(lambda db: self._renew(db, running)):
                job = registry.get(uuid)
                if job is not None and job.cancel():
                    log.info("%s job %s (%s): cancelled through another replica", job.kind, uuid, job.name)
            lapsed = await self.db.run(self._fail_lapsed)
            if lapsed:
                log.warning("marked %d job(s) whose replica stopped renewing them as failed: %s",
                            len(lapsed), ", ".join(lapsed))

        await keep(upkeep, "jobs")

    def _renew(self, db: Connection, uuids: list[str]) -> list[str]:
        if not uuids:
            return []
        marks = ", ".join("?" * len(uuids))
        db.execute(f"UPDATE jobs SET lease_until = ? WHERE owner = ? AND uuid IN ({marks})",
                   (time.time() + LEASE, self.owner, *uuids))
        rows = db.execute(f"SELECT uuid FROM jobs WHERE cancel_requested = 1 AND uuid IN ({marks})", uuids).fetchall()
        return [r[0] for r in rows]

    @staticmethod
    def _fail_lapsed(db: Connection) -> list[str]:
        db.execute("DELETE FROM jobs WHERE processed = 1 AND lease_until < ?", (time.time() - KEEP,))
        rows = db.execute("SELECT uuid, data FROM jobs WHERE processed = 0 AND lease_until < ?", (time.time(),)).fetchall()
        for uuid, text in rows:
            data = json.loads(text) | {"processed": True, "error": LOST, "message": f"error: {LOST}",
                                       "finished_at": time.time()}
            db.execute("UPDATE jobs SET data = ?, processed = 1 WHERE uuid = ? AND processed = 0", (json.dumps(data), uuid))
        return [r[0] for r in rows]
