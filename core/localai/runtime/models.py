"""Loaded models: one worker per model, started on first use and restarted after it dies."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from localai.errors import (  # noqa: F401 - re-exported
    ModelNotFound,
    ModelUnavailable,
    ServerBusy,
    WorkerDied,
    WorkerError,
)
from localai.registry.catalog import Catalog, ModelEntry
from localai.runtime.lifecycle import Lifecycle, LifecycleSettings
from localai.runtime.worker.client import WorkerProcess
from localai.types import ModelInfo

if TYPE_CHECKING:
    from localai.server.metrics import Metrics

log = logging.getLogger("localai.runtime.models")


@dataclass
class Loaded:
    entry: ModelEntry
    worker: WorkerProcess

    @property
    def info(self) -> ModelInfo:
        assert self.worker.info is not None
        return self.worker.info


class Runtime:
    """The loaded models' workers. ``metrics`` counts loads and rejections; ``lifecycle`` (its settings) gives it
    the watchdogs, the max-active-models and memory checks, built around this runtime."""

    def __init__(self, catalog: Catalog, *, metrics: Metrics | None = None,
                 lifecycle: LifecycleSettings | None = None) -> None:
        self.catalog = catalog
        self._workers: dict[str, WorkerProcess] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._admission = asyncio.Lock()  # one model at a time makes room and registers its worker
        self.waiting: dict[str, int] = {}  # requests waiting for their model to load, by model
        self.metrics = metrics
        self.lifecycle: Lifecycle | None = Lifecycle(self, lifecycle) if lifecycle is not None else None

    def entry(self, name: str | None, usecase: str) -> ModelEntry:
        """The model a request names, or the first serving ``usecase`` when it names none."""
        if not name:
            entry = self.catalog.first_for(usecase)
            if entry is None:
                raise ModelNotFound(None, usecase)
            return entry
        entry = self.catalog.get(name)
        if entry is None:
            raise ModelNotFound(name)
        return entry

    def check_servable(self, entry: ModelEntry) -> None:
        """:class:`ModelUnavailable` naming why ``entry`` cannot be served (its config's problems, its backend)."""
        if entry.problems or entry.backend is None:
            raise ModelUnavailable(entry.name, "; ".join(entry.problems) or "no backend")
        reason = entry.backend.unavailable
        if reason:
            raise ModelUnavailable(entry.name, f"backend {entry.backend.name} cannot run here: {reason}")

    async def load(self, entry: ModelEntry) -> Loaded:
        self.check_servable(entry)
        worker = self._workers.get(entry.name)
        if worker is not None and worker.alive and worker.info is not None and not worker.unloading:
            worker.touch()
            return Loaded(entry, worker)
        lock = self._locks.setdefault(entry.name, asyncio.Lock())
        self.waiting[entry.name] = self.waiting.get(entry.name, 0) + 1
        try:
            async with lock:
                return await self._load_locked(entry)
        finally:
            self.waiting[entry.name] -= 1

    async def _load_locked(self, entry: ModelEntry) -> Loaded:
        assert entry.backend is not None
        worker = self._workers.get(entry.name)
        if worker is not None and worker.alive and worker.info is not None and not worker.unloading:
            worker.touch()
            return Loaded(entry, worker)
        if worker is not None:
            log.warning("reloading model %r after its worker %s", entry.name, "died" if worker.dead else "failed to load")
            await worker.stop()
            self._workers.pop(entry.name, None)
        async with self._admission:
            if self.lifecycle is not None:
                try:
                    await self.lifecycle.admit(entry)
                except ServerBusy:
                    if self.metrics is not None:
                        self.metrics.rejected(entry.name, entry.backend.name)
                    raise
            # A backend environment's plugin is found through its entry point, whatever the server disabled.
            worker = WorkerProcess(entry.name, entry.backend.target or entry.backend.name, entry.backend.interpreter,
                                   env={"LOCALAI_DISABLE_ENTRY_POINTS": ""} if entry.backend.environment else None)
            worker.on_exit = self._exited
            self._workers[entry.name] = worker
        started = time.monotonic()
        try:
            info = await worker.start(
                entry.worker_config(),
                str(entry.model_path) if entry.model_path else None,
                entry.options,
                parse_options=entry.backend.environment is not None,
            )
        except (WorkerError, WorkerDied) as exc:
            await worker.stop()
            if self._workers.get(entry.name) is worker:
                self._workers.pop(entry.name, None)
            raise ModelUnavailable(entry.name, str(exc)) from exc
        except BaseException:
            await worker.stop()
            if self._workers.get(entry.name) is worker:
                self._workers.pop(entry.name, None)
            raise
        if self.metrics is not None:
            self.metrics.model_loaded(entry.name, worker.backend, time.monotonic() - started)
        log.info("model %r loaded by %s (%s, context %s) in %.1fs", entry.name, entry.backend.name, info.architecture,
                 info.context_size, time.monotonic() - started)
        return Loaded(entry, worker)

    def _exited(self, worker: WorkerProcess) -> None:
        """A worker process ended: forget it (the next request starts a new one) and count why."""
        if self._workers.get(worker.model) is worker:
            self._workers.pop(worker.model, None)
        reason = "busy_watchdog" if worker.stop_kind == "busy_timeout" else worker.stop_kind or "crash"
        if worker.info is None:
            reason = "load_failure"
        if self.metrics is not None:
            self.metrics.worker_exited(worker.model, worker.backend, reason)

    async def unload(self, name: str, reason: str = "unload") -> bool:
        """Stop a model's worker cleanly (``unload_model`` runs in it); ``False`` if it was not loaded."""
        worker = self._workers.get(name)
        if worker is None:
            return False
        worker.unloading = True
        self._workers.pop(name, None)
        await worker.stop(kind=reason)
        return True

    async def get(self, name: str | None, usecase: str) -> Loaded:
        return await self.load(self.entry(name, usecase))

    def loaded(self) -> dict[str, WorkerProcess]:
        return {k: w for k, w in self._workers.items() if w.alive}

    def workers(self) -> dict[str, WorkerProcess]:
        """Every model with a worker, loading ones included (what counts against --max-active-backends)."""
        return {k: w for k, w in self._workers.items() if not w.dead}

    async def shutdown(self) -> None:
        await asyncio.gather(*(w.stop(kind="shutdown") for w in self._workers.values()), return_exceptions=True)
        self._workers.clear()
