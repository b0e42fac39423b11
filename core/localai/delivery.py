"""Handing one generation's chunks from the backend thread that decodes them to the worker, for backends with a
decode loop of their own (a scheduler thread serving several requests).

Two ways, as the ``generate`` hookspec allows: the worker iterates (a thread waits on the chunk queue), or it
calls ``push(emit)`` and the decode thread sends each chunk itself. Pushing spares every token a hand-over to
another thread: that thread's wake-up runs on the cores the model decodes on and, beside a multi-threaded
forward pass, stalls the whole step. Worker-side; imports nothing heavy.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from localai.types import GenerationChunk


class Delivery:
    """The decode thread's side of one generation: ``deliver`` each chunk (or the failure), in order.

    A backend's per-request state object inherits this (or holds one); ``closed`` is set once the consumer left.
    """

    def __init__(self) -> None:
        self.out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.emit: Callable[[GenerationChunk], None] | None = None  # set by push: deliver from the decode thread
        self.lock = threading.Lock()  # orders a delivery against attaching ``emit``
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self.closed = False  # the consumer went away: the decode thread drops the generation at its next step

    def deliver(self, item: GenerationChunk | BaseException) -> None:
        """Hand a chunk (or the failure) to the consumer: straight to its ``emit`` once pushing, else its queue."""
        with self.lock:
            if self.emit is None:
                self.out.put(item)
                return
            self._emit(item)

    def _emit(self, item: GenerationChunk | BaseException) -> None:
        if isinstance(item, BaseException):
            self.error = item
            self.ended.set()
            return
        try:
            self.emit(item)  # type: ignore[misc]
        except BaseException as exc:  # noqa: BLE001 - the consumer failed: end its wait with the error
            self.error = exc
            self.closed = True
            self.emit = lambda _item: None
            self.ended.set()
            return
        if item.finish_reason is not None:
            self.ended.set()


class ChunkStream:
    """The worker's side: iterate the chunks, or ``push(emit)``; closing early cancels the generation.

    ``wake`` tells the decode thread to look again (a consumer that left frees its sequence at once).
    """

    def __init__(self, delivery: Delivery, wake: Callable[[], None]) -> None:
        self.delivery = delivery
        self.wake = wake
        self.done = False

    def __iter__(self) -> ChunkStream:
        return self

    def __next__(self) -> GenerationChunk:
        if self.done:
            raise StopIteration
        item = self.delivery.out.get()
        if isinstance(item, BaseException):
            self.done = True
            raise item
        if item.finish_reason is not None:
            self.done = True
        return item

    def push(self, emit: Callable[[GenerationChunk], None]) -> None:
        d = self.delivery
        with d.lock:  # the decode thread's next delivery waits until what was queued before is emitted
            d.emit = emit
            while not d.out.empty():
                d._emit(d.out.get_nowait())
        try:
            while not d.ended.wait(1.0):
                pass
        except BaseException:
            d.closed = True  # interrupted: stop decoding for nobody
            self.wake()
            raise
        self.done = True
        if d.error is not None:
            raise d.error

    def close(self) -> None:
        if not self.done:
            self.done = True
            self.delivery.closed = True
            self.wake()

    def __del__(self) -> None:
        try:
            self.close()  # dropped unread: stop decoding for nobody, as a closed generator did
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
