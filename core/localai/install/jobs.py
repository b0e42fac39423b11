"""Background jobs with progress, shared by every long-running admin operation (model and backend installs).

A job's JSON is LocalAI's gallery op status (``GET /models/jobs/{uuid}``), so LocalAI clients and the web UI
read every kind of job the same way. Work runs in a thread; it reports through :meth:`Job.update` and polls
:meth:`Job.check_cancelled` so a cancel request stops it at the next step.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("localai.install.jobs")


class JobCancelled(Exception):
    """Raised inside a job's work by :meth:`Job.check_cancelled` once the job was cancelled."""


def human_size(n: int | float | None) -> str:
    """LocalAI reports sizes as human strings ("12.3 MB")."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return ""


@dataclass
class Job:
    kind: str                      # "model" | "backend" | ...
    name: str                      # what it works on: the gallery element's name
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    deletion: bool = False
    message: str = "queued"
    progress: float = 0.0          # 0-100
    file_name: str = ""
    file_size: int | None = None
    downloaded_size: int | None = None
    error: str | None = None
    processed: bool = False
    cancelled: bool = False
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    result: Any = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _listener: Callable[[Job], None] | None = field(default=None, repr=False)

    def update(self, **fields: Any) -> None:
        with self._lock:
            for key, value in fields.items():
                if not hasattr(self, key) or key.startswith("_"):
                    raise AttributeError(f"job has no field {key!r}")
                setattr(self, key, value)
        if self._listener is not None:
            try:
                self._listener(self)
            except Exception:  # noqa: BLE001 - telling others must never stop the work
                log.exception("job %s: change listener failed", self.uuid)

    def cancel(self) -> bool:
        """Ask the work to stop; ``False`` if the job already finished."""
        if self.processed:
            return False
        self._cancel.set()
        return True

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled(f"{self.kind} job {self.uuid} for {self.name!r} was cancelled")

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "uuid": self.uuid,
                "kind": self.kind,
                "deletion": self.deletion,
                "message": self.message,
                "progress": round(self.progress, 2),
                "file_name": self.file_name,
                "file_size": human_size(self.file_size),
                "downloaded_size": human_size(self.downloaded_size),
                "error": self.error,
                "processed": self.processed,
                "cancelled": self.cancelled,
                "gallery_element_name": self.name,
                "created_at": self.created_at,
                "finished_at": self.finished_at,
            }


class JobRegistry:
    """Jobs by uuid for the life of the server; each job's work runs in its own daemon thread. ``listener`` hears of
    every change to a job (the state database's mirror, for other replicas: localai.state.jobs)."""

    def __init__(self, listener: Callable[[Job], None] | None = None) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.listener = listener

    def submit(self, kind: str, name: str, work: Callable[[Job], Any], *, deletion: bool = False) -> Job:
        """Start ``work(job)`` in a thread. Its return value lands in ``job.result``; an exception in ``job.error``."""
        job = Job(kind=kind, name=name, deletion=deletion, _listener=self.listener)
        if self.listener is not None:
            self.listener(job)  # queued: other replicas know the uuid before this call returns it
        with self._lock:
            self._jobs[job.uuid] = job
        threading.Thread(target=self._run, args=(job, work), name=f"job-{kind}-{job.uuid[:8]}", daemon=True).start()
        return job

    def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
        job.update(message="processing")
        try:
            result = work(job)
        except JobCancelled as exc:
            job.update(cancelled=True, message="cancelled", error=str(exc))
            log.info("%s job %s (%s) cancelled", job.kind, job.uuid, job.name)
        except Exception as exc:  # noqa: BLE001 - the job's error is the report; polling never turns it into a 500
            job.update(error=str(exc) or type(exc).__name__, message=f"error: {exc}")
            log.error("%s job %s (%s) failed: %s", job.kind, job.uuid, job.name, exc)
        else:
            job.update(result=result, progress=100.0, message="completed")
            log.info("%s job %s (%s) completed", job.kind, job.uuid, job.name)
        finally:
            job.update(processed=True, finished_at=time.time())

    def get(self, uuid: str) -> Job | None:
        with self._lock:
            return self._jobs.get(uuid)

    def list(self, kind: str | None = None) -> list[Job]:
        with self._lock:
            jobs = list(self._jobs.values())
        return [j for j in jobs if kind is None or j.kind == kind]
