"""Graceful shutdown: on SIGTERM/SIGINT stop taking requests, let in-flight ones finish, then stop.

uvicorn's own handling closes the listening socket at once and cuts streams after its timeout. Here the
first signal only starts draining: new requests get 503 in their API's shape, requests in flight have up
to ``--shutdown-timeout`` to finish; past it the workers are stopped, so each remaining stream ends with
its API's error event (never a cut connection). Then uvicorn shuts down. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import FrameType
from typing import Any

import uvicorn

from localai.runtime.lifecycle import format_duration

log = logging.getLogger("localai.server")


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: Any, timeout: float) -> None:
        super().__init__(config)
        self.state = state
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is None or self.state.draining or not self.started:
            super().handle_exit(sig, frame)  # second signal, or not serving yet: uvicorn's own (quick) shutdown
            return
        self._captured_signals.append(sig)  # uvicorn re-raises it once stopped, as it does for its own handling
        self.state.draining = True
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain = asyncio.ensure_future(self.drain())

    async def drain(self) -> None:
        state = self.state
        active = lambda: state.active_requests  # noqa: E731
        log.info("shutting down: refusing new requests; waiting up to %s for %d request(s) in flight (--shutdown-timeout)",
                 format_duration(self.timeout), active())
        deadline = time.monotonic() + self.timeout
        while active() > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if active() > 0:
            reason = (f"the server is shutting down and the generation did not finish within --shutdown-timeout "
                      f"({format_duration(self.timeout)})")
            log.warning("shutdown timeout passed with %d request(s) in flight: stopping the workers", active())
            for worker in state.runtime.workers().values():
                worker.kill("shutdown", reason)
            end = time.monotonic() + 5
            while active() > 0 and time.monotonic() < end:
                await asyncio.sleep(0.05)
        log.info("all requests done; stopping")
        self.should_exit = True
