"""Loaded models: one worker per model, started on first use and restarted after it dies."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from localai.catalog import Catalog, ModelEntry
from localai.types import ModelInfo
from localai.worker.client import WorkerDied, WorkerError, WorkerProcess

log = logging.getLogger("localai.runtime")


class ModelNotFound(Exception):
    def __init__(self, name: str | None, usecase: str | None = None) -> None:
        self.name = name
        if name is None:
            msg = f"no model serving {usecase or 'this request'} is configured"
        else:
            msg = f'model "{name}" not found'
        super().__init__(msg)


class ModelUnavailable(Exception):
    """The model is configured but cannot be served (broken config, missing backend, load failure)."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"model {name!r} cannot be loaded: {reason}")


@dataclass
class Loaded:
    entry: ModelEntry
    worker: WorkerProcess

    @property
    def info(self) -> ModelInfo:
        assert self.worker.info is not None
        return self.worker.info


class Runtime:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._workers: dict[str, WorkerProcess] = {}
        self._locks: dict[str, asyncio.Lock] = {}

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

    async def load(self, entry: ModelEntry) -> Loaded:
        if entry.problems or entry.backend is None:
            raise ModelUnavailable(entry.name, "; ".join(entry.problems) or "no backend")
        reason = entry.backend.unavailable
        if reason:
            raise ModelUnavailable(entry.name, f"backend {entry.backend.name} cannot run here: {reason}")
        lock = self._locks.setdefault(entry.name, asyncio.Lock())
        async with lock:
            worker = self._workers.get(entry.name)
            if worker is not None and worker.alive and worker.info is not None:
                return Loaded(entry, worker)
            if worker is not None:
                log.warning("reloading model %r after its worker %s", entry.name, "died" if worker.dead else "failed to load")
                await worker.stop()
            # A backend environment's plugin is found through its entry point, whatever the server disabled.
            worker = WorkerProcess(entry.name, entry.backend.target or entry.backend.name, entry.backend.interpreter,
                                   env={"LOCALAI_DISABLE_ENTRY_POINTS": ""} if entry.backend.environment else None)
            self._workers[entry.name] = worker
            try:
                info = await worker.start(
                    entry.config.model_dump(mode="json"),
                    str(entry.model_path) if entry.model_path else None,
                    entry.options,
                    parse_options=entry.backend.environment is not None,
                )
            except (WorkerError, WorkerDied) as exc:
                await worker.stop()
                self._workers.pop(entry.name, None)
                raise ModelUnavailable(entry.name, str(exc)) from exc
            log.info("model %r loaded by %s (%s, context %s)", entry.name, entry.backend.name, info.architecture, info.context_size)
            return Loaded(entry, worker)

    async def get(self, name: str | None, usecase: str) -> Loaded:
        return await self.load(self.entry(name, usecase))

    def loaded(self) -> dict[str, WorkerProcess]:
        return {k: w for k, w in self._workers.items() if w.alive}

    async def shutdown(self) -> None:
        await asyncio.gather(*(w.stop() for w in self._workers.values()), return_exceptions=True)
        self._workers.clear()
