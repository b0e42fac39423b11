"""When models load and unload: idle and busy watchdogs, the active-model limit, memory checks, preload.

LocalAI's policy names (``--enable-watchdog-idle``, ``--max-active-backends``...) with Ollama's per-model
``keep_alive``. The :class:`Lifecycle` runs one background task that checks every worker twice a second;
:meth:`Lifecycle.admit` is called by the runtime before a worker starts, to make room for it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localai.durations import format_duration, parse_duration  # noqa: F401 - re-exported
from localai.errors import ServerBusy

if TYPE_CHECKING:
    from localai.registry.catalog import ModelEntry
    from localai.runtime.models import Runtime
    from localai.runtime.worker.client import WorkerProcess

log = logging.getLogger("localai.runtime.lifecycle")

# A model used this recently is never idle-unloaded or evicted: it may be between loading and sending its
# request (Runtime.get -> worker.open), which the worker cannot count as in flight yet.
GRACE_S = 1.0


@dataclass
class LifecycleSettings:
    """The operator's policy (CLI flags / ``LOCALAI_`` env vars)."""

    idle_timeout: float | None = None  # --enable-watchdog-idle with --watchdog-idle-timeout; None = off
    busy_timeout: float | None = None  # --enable-watchdog-busy with --watchdog-busy-timeout; None = off
    max_active: int = 0  # --max-active-backends (0 = unlimited); --single-active-backend = 1
    eviction_wait: float = 30.0  # how long a load waits for a busy model to become evictable
    memory_check: bool = True  # refuse loads that would not fit in available RAM (after evicting idle models)
    preload: list[str] = field(default_factory=list)  # --preload-models
    interval: float = 0.5  # watchdog tick


def keep_alive(entry: ModelEntry, settings: LifecycleSettings) -> float | None:
    """Seconds an idle model stays loaded; ``None`` = until evicted or the server stops."""
    if entry.config.keep_alive is not None:
        seconds = parse_duration(entry.config.keep_alive)
        return None if seconds < 0 else seconds
    return settings.idle_timeout


def rss_bytes(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory() -> int | None:
    """``MemAvailable`` (bytes), or ``None`` where the system does not say (the check is then skipped)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def estimate_memory(entry: ModelEntry) -> int:
    """A rough RAM need: the model's files plus a KV cache guess from the context size.

    The KV cache per token is guessed as 1/8192 of the weights (within a factor of ~2 for common
    decoder LLMs at f16 KV), with a floor of 16 KiB. Only used to refuse loads that clearly cannot fit.
    """
    path = entry.model_path
    size = 0
    if path is not None:
        p = Path(path)
        try:
            if p.is_file():
                size = p.stat().st_size
            elif p.is_dir():
                size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        except OSError:
            size = 0
    ctx = entry.config.context_size or 0
    return size + ctx * max(16 * 1024, size // 8192)


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


class Lifecycle:
    """The policy acting on a :class:`~localai.runtime.Runtime`'s workers."""

    def __init__(self, runtime: Runtime, settings: LifecycleSettings | None = None) -> None:
        self.runtime = runtime
        self.settings = settings or LifecycleSettings()
        self._task: asyncio.Task[None] | None = None
        self.preload_tasks: dict[str, asyncio.Task[Any]] = {}
        self.preload_errors: dict[str, str] = {}

    # -- start-up ------------------------------------------------------------------------------

    def preload_names(self) -> list[str]:
        names = list(dict.fromkeys([*self.settings.preload,
                                    *(e.name for e in self.runtime.catalog.entries.values() if e.config.preload)]))
        return names

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="localai-lifecycle")
        for name in self.preload_names():
            self.preload_tasks[name] = asyncio.create_task(self._preload(name))

    async def _preload(self, name: str) -> None:
        entry = self.runtime.catalog.get(name)
        if entry is None:
            self.preload_errors[name] = f"model {name!r} is not configured"
            log.error("preload: model %r is not configured", name)
            return
        try:
            await self.runtime.load(entry)
            log.info("preloaded model %r", name)
        except Exception as exc:  # noqa: BLE001 - reported by /readyz and the log
            self.preload_errors[name] = str(exc)
            log.error("preload of model %r failed: %s", name, exc)

    def readiness(self) -> tuple[bool, list[str], dict[str, str]]:
        """(ready, models still loading, models that failed) for the preload list."""
        loaded = self.runtime.loaded()
        waiting = [n for n in self.preload_names() if n not in self.preload_errors
                   and not (n in loaded and loaded[n].info is not None)]
        return not waiting and not self.preload_errors, waiting, dict(self.preload_errors)

    async def stop(self) -> None:
        for t in [self._task, *self.preload_tasks.values()]:
            if t is not None and not t.done():
                t.cancel()
        await asyncio.gather(*(t for t in [self._task, *self.preload_tasks.values()] if t is not None), return_exceptions=True)

    # -- watchdogs -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval)
            try:
                await self.check()
            except Exception:  # noqa: BLE001 - the watchdog must keep running
                log.exception("lifecycle check failed")

    def expires_in(self, worker: WorkerProcess) -> float | None:
        """Seconds until an idle unload (``None`` = not scheduled: busy, pinned to forever, or no watchdog)."""
        entry = self.runtime.catalog.get(worker.model)
        if entry is None or worker.inflight or worker.info is None:
            return None
        ttl = keep_alive(entry, self.settings)
        if ttl is None:
            return None
        return max(ttl, GRACE_S) - (time.monotonic() - worker.last_used)

    async def check(self) -> None:
        busy = self.settings.busy_timeout
        for name, worker in list(self.runtime.loaded().items()):
            if busy is not None and worker.inflight and worker.oldest_request_age() > busy:
                worker.kill("busy_timeout", f"a request to model {name!r} ran longer than the busy watchdog allows "
                                            f"({format_duration(busy)}, --watchdog-busy-timeout); the model reloads on the next request")
                continue
            left = self.expires_in(worker)
            if left is not None and left <= 0:
                entry = self.runtime.catalog.get(name)
                log.info("unloading model %r: idle for %.0fs (keep_alive %s)", name, time.monotonic() - worker.last_used,
                         entry.config.keep_alive if entry and entry.config.keep_alive is not None else "--watchdog-idle-timeout")
                await self.runtime.unload(name, "idle")

    # -- admission -----------------------------------------------------------------------------

    def _evictable(self, exclude: str) -> list[WorkerProcess]:
        """Idle, unpinned models, least recently used first."""
        out = []
        now = time.monotonic()
        for name, worker in self.runtime.workers().items():
            entry = self.runtime.catalog.get(name)
            if name == exclude or worker.state != "ready" or (entry is not None and entry.config.pinned):
                continue
            if now - worker.last_used < GRACE_S:
                continue
            out.append(worker)
        return sorted(out, key=lambda w: w.last_used)

    async def admit(self, entry: ModelEntry) -> None:
        """Make room for ``entry`` before its worker starts: evict idle models, wait for busy ones, or refuse."""
        limit = self.settings.max_active
        if limit > 0:
            deadline = time.monotonic() + self.settings.eviction_wait
            while True:
                active = [n for n in self.runtime.workers() if n != entry.name]
                if len(active) < limit:
                    break
                victims = self._evictable(entry.name)
                if victims:
                    log.info("evicting model %r (least recently used) to load %r: --max-active-backends %d",
                             victims[0].model, entry.name, limit)
                    await self.runtime.unload(victims[0].model, "eviction")
                    continue
                if time.monotonic() >= deadline:
                    raise ServerBusy(
                        f"server busy: cannot load model {entry.name!r} because {len(active)} model(s) are active "
                        f"({', '.join(sorted(active))}; --max-active-backends {limit}) and none became idle within "
                        f"{format_duration(self.settings.eviction_wait)}; retry later")
                await asyncio.sleep(0.05)
        if self.settings.memory_check:
            await self._fit_memory(entry)

    async def _fit_memory(self, entry: ModelEntry) -> None:
        need = estimate_memory(entry)
        while True:
            free = available_memory()
            if free is None or need <= free:
                return
            victims = self._evictable(entry.name)
            if not victims:
                raise ServerBusy(
                    f"not enough memory to load model {entry.name!r}: it needs about {_gib(need)} (model files plus "
                    f"context {entry.config.context_size or 'default'}) and {_gib(free)} is available with no idle model "
                    f"left to unload; free memory, lower context_size, or pass --disable-memory-check",
                    code="insufficient_memory", retry_after=None)
            log.info("evicting model %r to free memory for %r (needs ~%s, %s available)",
                     victims[0].model, entry.name, _gib(need), _gib(free))
            await self.runtime.unload(victims[0].model, "eviction")

    # -- reporting -----------------------------------------------------------------------------

    def monitor(self) -> list[dict[str, Any]]:
        """One row per loaded model for ``GET /backend/monitor``."""
        rows = []
        for name, worker in sorted(self.runtime.workers().items()):
            entry = self.runtime.catalog.get(name)
            left = self.expires_in(worker)
            ttl = keep_alive(entry, self.settings) if entry is not None else None
            rows.append({
                "model": name,
                "backend": worker.backend,
                "pid": worker.pid,
                "state": worker.state,
                "in_flight": len(worker.inflight),
                "queued": self.runtime.waiting.get(name, 0),
                "rss_bytes": rss_bytes(worker.pid),
                "pinned": bool(entry and entry.config.pinned),
                "vision": bool(worker.info and worker.info.vision),  # what the loaded model says it accepts
                "keep_alive_seconds": None if ttl is None else ttl,
                "loaded_since": _iso(worker.loaded_at),
                "last_used": _iso(worker.last_used_wall),
                "expires_at": None if left is None else _iso(time.time() + left),
                "oldest_request_seconds": round(worker.oldest_request_age(), 3) if worker.inflight else None,
            })
        return rows


def _iso(ts: float | None) -> str | None:
    if ts is None or not math.isfinite(ts):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
