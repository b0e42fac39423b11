"""Drive a backend the way the server does, synchronously, for tests: its catalog entry and a real worker."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from localai.registry.catalog import Catalog, ModelEntry
from localai.runtime.worker.client import GenerationStream, WorkerProcess
from localai.types import GenerateRequest, GenerationChunk, ModelInfo


def write_model_yaml(folder: Path, name: str, backend: str, model: dict[str, Any]) -> Path:
    """``<name>.yaml`` in ``folder``: the author's model dict with our name and backend."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**model, "name": name, "backend": backend}, sort_keys=False))
    return path


def catalog(models_path: Path) -> Catalog:
    """The models folder as the server process sees it: plugins discovered, the backend environments installed
    under ``LOCALAI_BACKENDS_PATH`` registered, options parsed."""
    from localai.bootstrap import bootstrap

    return bootstrap(models_path, os.environ.get("LOCALAI_BACKENDS_PATH") or None).models


class WorkerHarness:
    """One model's real worker process (``python -m localai.worker``), driven from synchronous code.

    An event loop runs in a daemon thread; every method blocks until the worker answered.
    """

    def __init__(self, entry: ModelEntry, timeout: float = 120) -> None:
        assert entry.backend is not None, entry.problems
        self.entry = entry
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="conformance-worker-loop")
        self.thread.start()
        self.worker = WorkerProcess(entry.name, entry.backend.name, entry.backend.interpreter)
        self.info: ModelInfo | None = None

    def run(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout or self.timeout)

    def load(self) -> ModelInfo:
        e = self.entry
        self.info = self.run(self.worker.start(e.worker_config(), str(e.model_path) if e.model_path else None, e.options))
        return self.info

    def call(self, hook: str, **args: Any) -> Any:
        return self.run(self.worker.call(hook, **args))

    def image(self, **fields: Any) -> Any:
        """One ``generate_image`` in the worker (an :class:`localai.types.ImageResult`)."""
        from localai.types import ImageRequest

        return self.run(self.worker.generate_image(ImageRequest(model=self.entry.name, **fields)))

    def generate(self, request: GenerateRequest | dict[str, Any], *,
                 on_chunk: Callable[[GenerationChunk, list[GenerationChunk]], bool] | None = None) -> list[GenerationChunk]:
        """All chunks of one generation; ``on_chunk`` returning ``True`` cancels it (the chunks then run to the end)."""
        if isinstance(request, dict):
            request = GenerateRequest(model=self.entry.name, **request)

        async def go() -> list[GenerationChunk]:
            stream: GenerationStream = await self.worker.open(request)
            chunks: list[GenerationChunk] = []
            cancelled = False
            while True:
                msg = await stream.queue.get()  # read on after a cancel: the backend's last chunk must come
                if msg["type"] == "end":
                    stream._done()
                    return chunks
                if msg["type"] != "chunk":
                    stream._done()
                    self.worker._raise_for(msg)
                chunks.append(GenerationChunk.model_validate(msg["data"]))
                if not cancelled and on_chunk is not None and on_chunk(chunks[-1], chunks):
                    cancelled = True
                    self.worker._send({"op": "cancel", "id": stream.rid})

        return self.run(go())

    def stop(self, timeout: float = 15) -> int | None:
        """Shut the worker down (``unload_model`` runs) and return its exit status."""
        start = time.monotonic()
        try:
            self.run(self.worker.stop(timeout=timeout), timeout=timeout + 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
        self.stop_seconds = time.monotonic() - start
        return self.worker.proc.returncode if self.worker.proc else None


def in_threads(count: int, call: Callable[[int], Any], timeout: float) -> list[Any]:
    """``call(i)`` for each i in ``range(count)``, all at once in threads, to check that concurrent requests get
    the same answers: the results in order, the exception in place of the result where a call raised."""
    results: list[Any] = [None] * count

    def one(i: int) -> None:
        try:
            results[i] = call(i)
        except BaseException as exc:  # noqa: BLE001
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results
