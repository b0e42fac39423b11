"""Running a response as an asyncio task that any number of clients can follow.

Every response runs in its own task, whether the client waits for JSON, streams, or left
(background). The task feeds engine events through the :class:`Emitter`, keeps every stream event
in memory for followers, and saves state and events to the store. Cancelling the task closes the
engine iterator, which cancels the generation in the worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from localai.errors import APIError
from localai.events import Event
from localai.server.api.errors import to_api_error
from localai.server.api.responses.emitter import Emitter, StreamEvent
from localai.server.api.responses.store import Store
from localai.state import StoreUnavailable

log = logging.getLogger("localai.responses")

SAVE_EVERY = 32  # events buffered before a store write while generating
SAVE_AFTER = 0.25  # ... or seconds, so another replica following the response is never far behind


class Run:
    def __init__(self, emitter: Emitter, *, background: bool, store: Store | None) -> None:
        self.emitter = emitter
        self.background = background
        self.store = store
        self.events: list[tuple[str, str]] = []  # (type, json), index == sequence_number
        self.task: asyncio.Task[None] | None = None
        self.cancel_requested = False
        self.closed = False  # set once the last event is published and saved
        self.error: APIError | None = None  # why it failed, for clients waiting on plain JSON
        self._signal = asyncio.Event()
        self._unsaved: list[StreamEvent] = []
        self._saved_at = time.monotonic()

    @property
    def id(self) -> str:
        return self.emitter.response["id"]

    @property
    def response(self) -> dict[str, Any]:
        return self.emitter.response

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    def publish(self, events: list[StreamEvent], save: bool = False) -> None:
        for ev in events:
            self.events.append((ev["type"], json.dumps(ev, ensure_ascii=False, separators=(",", ":"))))
        self._unsaved.extend(events)
        if self.store is not None and (save or len(self._unsaved) >= SAVE_EVERY
                                       or time.monotonic() - self._saved_at >= SAVE_AFTER):
            self.store.save(self.response, self._unsaved, final=self.emitter.finished)
            self._unsaved = []
            self._saved_at = time.monotonic()
        self._wake()

    def _wake(self) -> None:
        signal, self._signal = self._signal, asyncio.Event()
        signal.set()

    async def drive(self, stream: AsyncIterator[Event]) -> None:
        try:
            if self.response["status"] == "queued":
                self.publish([self.emitter.set_status("in_progress")], save=True)
            async for ev in stream:
                events = self.emitter.feed(ev)
                self.publish(events, save=self.emitter.finished)
                if self.emitter.finished:
                    break
            if not self.emitter.finished:  # the engine always ends with Finish; never leave a response open
                self.error = APIError("server", "generation ended without finishing")
                self.publish(self.emitter.fail(self.error), save=True)
        except asyncio.CancelledError:
            if self.cancel_requested:
                self.publish(self.emitter.cancel(), save=True)
            else:
                self.error = APIError("server", "the server shut down while this response was running")
                self.publish(self.emitter.fail(self.error), save=True)
        except Exception as exc:  # noqa: BLE001 - reported in the response, never a dead stream
            self.error = to_api_error(exc)
            if self.error.code == "internal_error":
                log.exception("response %s failed", self.id)
            self.publish(self.emitter.fail(self.error), save=True)
        finally:
            try:
                await stream.aclose()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001
                pass
            try:
                if self.store is not None:
                    await self.store.flush()
            except StoreUnavailable:
                log.warning("response %s ended while the state database was unavailable; its last state is written "
                            "when the database is back", self.id)
            finally:
                self.closed = True
                self._wake()

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.cancel_requested = True
            self.task.cancel()

    async def wait(self) -> None:
        if self.task is not None:
            await asyncio.wait({self.task})

    async def follow(self, after: int = -1) -> AsyncIterator[tuple[str, str]]:
        """Events numbered above ``after``: what is there now, then each new one until the run ends."""
        i = max(after + 1, 0)
        while True:
            signal = self._signal
            while i < len(self.events):
                yield self.events[i]
                i += 1
            if self.closed:
                return
            await signal.wait()


class Runs:
    """The responses running in this process, by id."""

    def __init__(self) -> None:
        self.active: dict[str, Run] = {}  # stored responses only: the ones clients can look up
        self._all: set[Run] = set()

    def start(self, run: Run, stream: AsyncIterator[Event]) -> Run:
        if run.store is not None:
            self.active[run.id] = run
        self._all.add(run)
        run.task = asyncio.create_task(run.drive(stream), name=f"response {run.id}")

        def forget(_: object) -> None:
            self.active.pop(run.id, None)
            self._all.discard(run)

        run.task.add_done_callback(forget)
        return run

    def get(self, rid: str) -> Run | None:
        return self.active.get(rid)

    async def shutdown(self) -> None:
        runs = list(self._all)
        for run in runs:
            if run.task is not None:
                run.task.cancel()
        if runs:
            await asyncio.wait([r.task for r in runs if r.task is not None], timeout=10)
