"""The server's handle on one worker process: start it, stream from it, notice when it dies."""

from __future__ import annotations

import asyncio
import collections
import ctypes
import itertools
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from localai.errors import WorkerDied, WorkerError, describe_exit  # noqa: F401 - re-exported
from localai.runtime.worker import protocol
from localai.types import (
    GenerateRequest,
    GenerationChunk,
    ImageRequest,
    ImageResult,
    ModelInfo,
)

log = logging.getLogger("localai.worker")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGKILL when the server dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:  # noqa: BLE001 - not Linux: the worker still exits on socket EOF
        pass


# The last line of a Python traceback ("ValueError: ...", "vllm.x.EngineError: ...").
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt): .+")


def root_cause(lines: list[str], message: str) -> str | None:
    """The last exception a worker (or a process it started, such as vLLM's engine core) printed that is not
    ``message`` itself: where the real reason for a generic load failure ("Engine core initialization failed")
    usually is."""
    for line in reversed(lines):
        line = line.strip()
        if _EXCEPTION_LINE.match(line) and message.strip() not in line and line.split(": ", 1)[1] not in message:
            return line
    return None


class MessageLines(asyncio.Protocol):
    """The worker's message stream, one JSON line per message, each handed on as it arrives.

    Lines are decoded inside ``data_received``: a streamed token reaches its request's queue in the same loop step
    as its bytes, with no reader task to wake in between (the per-token path runs on the cores the model decodes on).
    A line that cannot be decoded, or one longer than ``LIMIT``, ends the stream as broken.
    """

    LIMIT = 256 * 1024 * 1024

    def __init__(self, deliver: Callable[[bytes], None], closed: asyncio.Future[None]) -> None:
        self.deliver = deliver
        self.closed = closed
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if b"\n" not in data:
            self.buffer += data  # part of a long message (an image, a batch of vectors)
            if len(self.buffer) > self.LIMIT:
                self._broken(ValueError(f"a message from the worker is longer than {self.LIMIT} bytes"))
            return
        if self.buffer:
            data = bytes(self.buffer) + data
            self.buffer.clear()
        *lines, rest = data.split(b"\n")
        self.buffer += rest
        try:
            for line in lines:
                if line:
                    self.deliver(line)
        except Exception as exc:  # noqa: BLE001 - a garbled stream: the worker is unusable
            self._broken(exc)

    def _broken(self, exc: Exception) -> None:
        self.buffer.clear()
        if not self.closed.done():
            self.closed.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class WorkerProcess:
    """One model's worker. Requests are multiplexed by id over a socket pair."""

    def __init__(self, model: str, backend: str, python: str | None = None, env: dict[str, str] | None = None) -> None:
        self.model = model
        self.backend = backend
        self.python = python or sys.executable
        self.env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self.info: ModelInfo | None = None
        self._ids = itertools.count(1)
        self._queues: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._writer: asyncio.Transport | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.returncode: int | None = None
        self.dead = False
        # Lifecycle bookkeeping (localai.runtime.lifecycle): request start times by id, timestamps, why it was stopped.
        self.inflight: dict[int, float] = {}
        self.created_at = time.time()
        self.loaded_at: float | None = None
        self.last_used = time.monotonic()
        self.last_used_wall = time.time()
        self.unloading = False
        self.stop_kind: str | None = None
        self.stop_reason: str | None = None
        self.on_exit: Callable[[WorkerProcess], None] | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=400)
        self._stderr_task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and not self.dead and not self._broken()

    def _broken(self) -> bool:
        """The message stream is closing: the worker is gone even before ``_read`` has run to mark it dead (a
        request arriving in between would otherwise write to a closed transport)."""
        return self._writer is not None and self._writer.is_closing()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def state(self) -> str:
        """LocalAI's monitor states: loading, ready, busy, unloading."""
        if self.unloading or self.dead:
            return "unloading"
        if self.info is None:
            return "loading"
        return "busy" if self.inflight else "ready"

    def oldest_request_age(self) -> float:
        return time.monotonic() - min(self.inflight.values()) if self.inflight else 0.0

    def touch(self) -> None:
        self.last_used = time.monotonic()
        self.last_used_wall = time.time()

    def _track(self, rid: int, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._queues[rid] = queue
        self.inflight[rid] = time.monotonic()
        self.touch()

    def _untrack(self, rid: int) -> None:
        self._queues.pop(rid, None)
        if self.inflight.pop(rid, None) is not None:
            self.touch()

    def kill(self, kind: str, reason: str) -> None:
        """Stop the process at once; requests in flight fail with ``reason`` (busy watchdog, shutdown timeout)."""
        self.stop_kind, self.stop_reason = kind, reason
        if self.proc is not None and self.proc.returncode is None:
            log.warning("killing worker pid %s for model %r: %s", self.proc.pid, self.model, reason)
            self.proc.kill()

    async def start(self, config: dict[str, Any], model_path: str | None, options: dict[str, Any],
                    parse_options: bool = False) -> ModelInfo:
        """Start the process and load the model; ``parse_options``: the plugin re-parses ``options:`` in the worker
        (a backend environment's plugin, whose own parser the server cannot import)."""
        parent, child = socket.socketpair()
        env = dict(os.environ, **self.env)
        env[protocol.FD_ENV] = str(child.fileno())
        env["LOCALAI_WORKER_MODEL"] = self.model
        self.proc = await asyncio.create_subprocess_exec(
            self.python, "-m", "localai.worker",
            stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(child.fileno(),),
            env=env,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        child.close()
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writer, _ = await asyncio.get_running_loop().create_unix_connection(
            lambda: MessageLines(self._deliver, closed), sock=parent)
        self._reader_task = asyncio.create_task(self._read(closed))
        self._stderr_task = asyncio.create_task(self._relay_stderr(self.proc.stderr))
        log.info("started worker pid %s for model %r (backend %s, %s)", self.proc.pid, self.model, self.backend, self.python)
        try:
            data = await self.call_op({"op": "load", "backend": self.backend, "config": config, "model_path": model_path,
                                       "options": options, "parse_options": parse_options}, track=False)
        except WorkerError as exc:
            await asyncio.sleep(0.2)  # let the relay catch up with what the worker printed before it answered
            cause = root_cause(list(self.stderr_tail), str(exc))
            if cause:
                raise WorkerError(self.model, exc.kind, f"{exc} (root cause in the worker's log: {cause})") from exc
            raise
        self.info = ModelInfo.model_validate(data)
        self.loaded_at = time.time()
        self.touch()
        return self.info

    async def _relay_stderr(self, stream: asyncio.StreamReader | None) -> None:
        """The worker's stderr (its log, and its engine's) goes on to ours; the tail is kept for error messages."""
        if stream is None:
            return
        out = getattr(sys.stderr, "buffer", None)
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line over the stream limit (asyncio dropped it): go on with the next
                continue
            except Exception:  # noqa: BLE001
                return
            if not line:
                return
            self.stderr_tail.append(line.decode(errors="replace"))
            try:
                if out is not None:
                    out.write(line)
                    out.flush()
                else:
                    sys.stderr.write(line.decode(errors="replace"))
            except (OSError, ValueError):
                pass

    def _deliver(self, line: bytes) -> None:
        msg = protocol.decode(line)
        queue = self._queues.get(msg.get("id", -1))
        if queue is not None:
            queue.put_nowait(msg)

    async def _read(self, closed: asyncio.Future[None]) -> None:
        """Wait for the message stream to end (the worker exited or broke it), then report the worker's exit."""
        try:
            await closed
        except Exception as exc:  # noqa: BLE001
            log.error("worker %r: broken message stream: %s", self.model, exc)
        self.dead = True
        if self.proc is not None:
            try:
                self.returncode = await asyncio.wait_for(self.proc.wait(), timeout=5)
            except asyncio.TimeoutError:
                self.proc.kill()
                self.returncode = await self.proc.wait()
        level = logging.ERROR if self.returncode else logging.INFO
        log.log(level, "worker pid %s for model %r %s", self.pid, self.model, describe_exit(self.returncode))
        for queue in self._queues.values():
            queue.put_nowait({"type": "died"})
        if self.on_exit is not None:
            try:
                self.on_exit(self)
            except Exception:  # noqa: BLE001 - bookkeeping must not hide the exit
                log.exception("worker %r: exit callback failed", self.model)

    def died(self) -> WorkerDied:
        return WorkerDied(self.model, self.returncode, self.stop_kind, self.stop_reason)

    def _send(self, msg: dict[str, Any]) -> None:
        if self._writer is None or self.dead or self._broken():
            raise self.died()
        try:
            self._writer.write(protocol.encode(msg))
        except RuntimeError as exc:  # uvloop: "unable to perform operation on <transport>; the handler is closed"
            raise self.died() from exc

    def _raise_for(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "died":
            raise self.died()
        if msg["type"] == "error":
            err = msg["error"]
            raise WorkerError(self.model, err.get("kind", protocol.BACKEND), err.get("message", "unknown error"))

    async def call_op(self, msg: dict[str, Any], track: bool = True) -> Any:
        rid = next(self._ids)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        if track:
            self._track(rid, queue)
        else:
            self._queues[rid] = queue
        try:
            self._send({**msg, "id": rid})
            reply = await queue.get()
            self._raise_for(reply)
            return reply.get("data")
        finally:
            self._untrack(rid)

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        """Generate images in the worker; if the awaiting task is cancelled (client gone), so is the denoising."""
        rid = next(self._ids)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._track(rid, queue)  # in flight like a generation: busy in /backend/monitor, never evicted as idle meanwhile
        try:
            self._send({"op": "image", "id": rid, "request": request.model_dump(mode="json", exclude_none=True)})
            reply = await queue.get()
        except asyncio.CancelledError:
            if self.alive:
                try:
                    self._send({"op": "cancel", "id": rid})
                except (WorkerDied, ConnectionError, RuntimeError):
                    pass
            raise
        finally:
            self._untrack(rid)
        self._raise_for(reply)
        return ImageResult.model_validate(reply.get("data"))

    async def call(self, hook: str, **args: Any) -> Any:
        """Run a non-streaming hook (``embed``, ``tokenize``, ``detokenize``) in the worker."""
        return protocol.unpack_result(await self.call_op({"op": "call", "hook": hook, "args": args}))

    async def open(self, request: GenerateRequest) -> GenerationStream:
        """Send ``request`` and wait until the backend accepted it (validated and queued).

        Refusals the backend raises before generating (a full queue, a prompt too long) raise here,
        while the HTTP status can still say so; the chunks then come from the returned stream.
        """
        rid = next(self._ids)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._track(rid, queue)
        stream = GenerationStream(self, rid, queue)
        try:
            self._send({"op": "generate", "id": rid, "request": request.model_dump(mode="json", by_alias=True, exclude_none=True)})
            first = await queue.get()
        except BaseException:
            await stream.aclose()
            raise
        if first["type"] != "accepted":
            stream.finished = True
            self._untrack(rid)
            self._raise_for(first)
            raise WorkerError(self.model, protocol.BACKEND, f"unexpected first message {first['type']!r}")
        return stream

    async def stop(self, timeout: float = 5.0, kind: str = "unload", reason: str | None = None) -> None:
        self.unloading = True
        if self.stop_kind is None:
            self.stop_kind, self.stop_reason = kind, reason
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            self._send({"op": "shutdown"})
            await asyncio.wait_for(self.proc.wait(), timeout=timeout)
        except (WorkerDied, asyncio.TimeoutError, ConnectionError):
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        if self._reader_task is not None:
            try:
                await asyncio.wait_for(self._reader_task, timeout=timeout)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader_task.cancel()


class GenerationStream:
    """The chunks of one accepted generation. ``aclose`` before the end cancels it in the worker."""

    def __init__(self, worker: WorkerProcess, rid: int, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.worker = worker
        self.rid = rid
        self.queue = queue
        self.finished = False

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> GenerationChunk:
        if self.finished:
            raise StopAsyncIteration
        msg = await self.queue.get()
        if msg["type"] == "end":
            self._done()
            raise StopAsyncIteration
        if msg["type"] != "chunk":
            self._done()
            self.worker._raise_for(msg)
        chunk = GenerationChunk.model_validate(msg["data"])
        if chunk.finish_reason is not None:
            # The generation is over (only the worker's "end" follows): a consumer that stops reading here has
            # not abandoned it, and closing must not send a cancel or log one.
            self._done()
        return chunk

    def _done(self) -> None:
        self.finished = True
        self.worker._untrack(self.rid)

    async def aclose(self) -> None:
        self.cancel()

    def cancel(self) -> None:
        if self.finished:
            return
        self._done()
        if self.worker.alive:
            log.info("model %r: generation %d cancelled before its end (client closed the stream)", self.worker.model, self.rid)
            try:
                self.worker._send({"op": "cancel", "id": self.rid})
            except (WorkerDied, ConnectionError, RuntimeError):
                pass

    def __del__(self) -> None:
        # A stream dropped unread (e.g. another choice of the same request failed) must not decode on.
        try:
            self.cancel()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
