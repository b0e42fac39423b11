"""One decode at a time per model, with the same bounded wait queue (and 429/529) as llama-cpp's scheduler."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from localai.errors import QueueFull


class SerialQueue:
    def __init__(self, model: str, queue_size: int) -> None:
        self.model = model
        self.queue_size = max(0, queue_size)
        self.turn = threading.Lock()
        self._count = threading.Lock()
        self.inflight = 0

    def admit(self) -> None:
        """Count a request in; :class:`QueueFull` when one is decoding and ``queue_size`` already wait."""
        with self._count:
            if self.inflight >= 1 + self.queue_size:
                raise QueueFull(self.model)
            self.inflight += 1

    def leave(self) -> None:
        with self._count:
            self.inflight -= 1

    def wait_turn(self, cancelled: Callable[[], bool]) -> bool:
        """Block until this request may decode; ``False`` if it was cancelled while waiting."""
        while not self.turn.acquire(timeout=0.05):
            if cancelled():
                return False
        return True


class Admitted:
    """A generation counted into the queue: iterates ``body``; ``close`` (the worker always calls it) leaves."""

    def __init__(self, queue: SerialQueue, body: Iterator[Any]) -> None:
        self.queue = queue
        self.body = body
        self.left = False

    def __iter__(self) -> Admitted:
        return self

    def __next__(self) -> Any:
        try:
            return next(self.body)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()
        if not self.left:
            self.left = True
            self.queue.leave()
