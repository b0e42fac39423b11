"""Worker process entry point: ``python -m localai.worker`` with the socket fd in ``LOCALAI_WORKER_FD``.

Serves one model. Requests run on their own threads so a cancel can arrive while one decodes;
the main thread only reads the socket, and exits the process when the server goes away.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import traceback
from typing import Any

from localai.runtime.worker import protocol

log = logging.getLogger("localai.worker")


class Worker:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.wlock = threading.Lock()
        self.cancels: dict[int, threading.Event] = {}
        self.model: Any = None
        self.pm: Any = None

    def send(self, msg: dict[str, Any]) -> None:
        data = protocol.encode(msg)
        with self.wlock:
            try:
                self.sock.sendall(data)
            except OSError:
                os._exit(0)  # the server is gone

    def fail(self, rid: int, exc: BaseException) -> None:
        kind = protocol.error_kind(exc)
        if kind == protocol.BACKEND:
            log.error("request %s failed:\n%s", rid, "".join(traceback.format_exception(exc)))
        self.send({"id": rid, "type": "error", "error": {"kind": kind, "message": str(exc) or type(exc).__name__}})

    def load(self, msg: dict[str, Any]) -> None:
        from localai.config import ModelConfig
        from localai.registry.backends import Backend, BackendError, Registry
        from localai.registry.plugins import make_plugin_manager
        from localai.types import ModelInfo

        rid = msg["id"]
        try:
            self.pm = make_plugin_manager()
            registry = Registry(self.pm)  # this environment's plugins: their declarations say how to load
            try:
                backend = registry.resolve(msg["backend"])
            except BackendError:  # not declared here: a per-hook plugin may still answer
                backend = Backend(name=msg["backend"], plugin="", distribution=None, version=None)
            config = ModelConfig.model_validate(msg["config"])
            options = msg.get("options") or {}
            if msg.get("parse_options"):  # the server checked options against the table; the plugin's parser decides
                parsed = registry.parse_options(backend, list(config.options), config)
                options = options if parsed is None else parsed
            model = registry.load_model(backend, config, msg.get("model_path"), options)
            if model is None:
                raise RuntimeError(f"no installed plugin loads backend {msg['backend']!r}")
            self.model = model
            info = model.info() if hasattr(model, "info") else ModelInfo(backend=msg["backend"])
            self.send({"id": rid, "type": "result", "data": info.model_dump(mode="json")})
        except BaseException as exc:  # noqa: BLE001 - report every load failure to the server
            self.fail(rid, exc)

    def generate(self, rid: int, raw: dict[str, Any]) -> None:
        from localai.types import GenerateRequest

        cancel = self.cancels.setdefault(rid, threading.Event())
        chunks = None
        try:
            request = GenerateRequest.model_validate(raw)
            chunks = self.pm.hook.generate(model=self.model, request=request, cancelled=cancel.is_set)
            if chunks is None:
                raise RuntimeError("no plugin generates for this model")
            self.send({"id": rid, "type": "accepted"})

            def emit(chunk: Any) -> None:
                self.send({"id": rid, "type": "chunk", "data": chunk.model_dump(mode="json", exclude_defaults=True)})

            push = getattr(chunks, "push", None)
            if push is not None:
                push(emit)  # the backend's decode thread sends each chunk itself (see the hookspec)
            else:
                for chunk in chunks:
                    emit(chunk)
                    if chunk.finish_reason is not None:
                        break
            self.send({"id": rid, "type": "end"})
        except BaseException as exc:  # noqa: BLE001
            self.fail(rid, exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # release the backend's resources (locks, slots) at once
            self.cancels.pop(rid, None)

    def image(self, rid: int, raw: dict[str, Any]) -> None:
        """One image generation; a ``cancel`` for ``rid`` stops it between denoising steps."""
        from localai.types import ImageRequest

        cancel = self.cancels.setdefault(rid, threading.Event())
        try:
            request = ImageRequest.model_validate(raw)
            result = self.pm.hook.generate_image(model=self.model, request=request, cancelled=cancel.is_set)
            if result is None:
                raise NotImplementedError("this model's backend does not generate images")
            self.send({"id": rid, "type": "result", "data": result.model_dump(mode="json")})
        except BaseException as exc:  # noqa: BLE001
            self.fail(rid, exc)
        finally:
            self.cancels.pop(rid, None)

    def call(self, rid: int, hook: str, args: dict[str, Any]) -> None:
        try:
            result = getattr(self.pm.hook, hook)(model=self.model, **args)
            if result is None:
                raise NotImplementedError(f"this model's backend does not implement {hook}")
            self.send({"id": rid, "type": "result", "data": protocol.pack_result(result)})
        except BaseException as exc:  # noqa: BLE001
            self.fail(rid, exc)

    def serve(self) -> None:
        shutdown = False
        for line in self.rfile:
            msg = protocol.decode(line)
            op = msg.get("op")
            rid = msg.get("id", 0)
            if op == "load":
                self.load(msg)
            elif op == "generate":
                self.cancels[rid] = threading.Event()
                threading.Thread(target=self.generate, args=(rid, msg["request"]), daemon=True).start()
            elif op == "image":
                self.cancels[rid] = threading.Event()
                threading.Thread(target=self.image, args=(rid, msg["request"]), daemon=True).start()
            elif op == "call":
                threading.Thread(target=self.call, args=(rid, msg["hook"], msg.get("args") or {}), daemon=True).start()
            elif op == "cancel":
                event = self.cancels.get(rid)
                if event is not None and not event.is_set():
                    log.info("request %s cancelled: its client went away", rid)
                    event.set()
            elif op == "shutdown":
                shutdown = True
                break
        # EOF (the server died) or shutdown: leave at once, whatever threads are decoding.
        if shutdown and self.model is not None:
            try:
                self.pm.hook.unload_model(model=self.model)
            except Exception:  # noqa: BLE001
                pass
        os._exit(0)


def main() -> None:
    fd = int(os.environ[protocol.FD_ENV])
    # Anything an engine prints to stdout goes to stderr with the rest of the logs.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    level = os.environ.get("LOCALAI_LOG_LEVEL", "INFO").upper()
    name = os.environ.get("LOCALAI_WORKER_MODEL", "?")
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s worker[{name}] %(name)s: %(message)s")
    sock = socket.socket(fileno=fd)
    Worker(sock).serve()


if __name__ == "__main__":
    main()
