"""The FastAPI application: state, API keys, error shapes, and the protocol routers."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from localai import __version__
from localai.bootstrap import bootstrap
from localai.engine import Engine
from localai.errors import APIError, QueueFull
from localai.install.jobs import JobRegistry
from localai.media import ImageSettings
from localai.registry.plugins import PluginManager
from localai.runtime.lifecycle import Lifecycle, LifecycleSettings
from localai.runtime.models import ModelNotFound, ModelUnavailable, Runtime, ServerBusy
from localai.runtime.worker.client import WorkerDied, WorkerError
from localai.server.api.errors import error_response, protocol_for_path, to_api_error
from localai.server.generated import GeneratedStore
from localai.server.metrics import Metrics
from localai.state import Database, replica_id
from localai.state.jobs import JobMirror

log = logging.getLogger("localai.server")

OPEN_PATHS = {"/healthz", "/readyz"}


@dataclass
class Settings:
    models_path: Path = Path("models")
    data_path: Path = Path("data")
    api_keys: list[str] = field(default_factory=list)
    backends_path: Path | None = None  # backend environments (localai.install.backends); default <data_path>/backends
    backend_galleries: list[str] = field(default_factory=list)  # extra backend gallery indexes (paths or URLs)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    upload_limit: int = 15 * 2**20  # request body limit in bytes (--upload-limit, MiB); 0 = none
    shutdown_timeout: float = 30.0  # --shutdown-timeout
    galleries: list[dict[str, Any]] = field(default_factory=list)  # model galleries, LocalAI's [{"name", "url"}]
    download_concurrency: int = 4                                  # gallery files downloaded at once
    generated_content_path: Path | None = None  # default: <data_path>/generated/images
    generated_max_age: float | None = 24 * 3600  # seconds a generated image is kept (None/0: forever)
    generated_max_files: int | None = 1000  # generated images kept at most (None/0: no limit)
    images: ImageSettings = field(default_factory=ImageSettings)  # limits on images in chat requests
    database_url: str | None = None  # --database-url: None is SQLite under data_path (localai.state)


class State:
    """Everything a request handler needs, built once at start-up."""

    def __init__(self, settings: Settings, pm: PluginManager | None = None) -> None:
        self.settings = settings
        settings.backends_path = settings.backends_path or settings.data_path / "backends"
        setup = bootstrap(settings.models_path, settings.backends_path, pm)
        self.pm, self.registry, self.catalog = setup.pm, setup.registry, setup.models
        self.metrics = Metrics()
        self.runtime = Runtime(self.catalog, metrics=self.metrics, lifecycle=settings.lifecycle)
        self.metrics.watch_runtime(self.runtime.workers)
        self.lifecycle: Lifecycle = self.runtime.lifecycle  # type: ignore[assignment]
        self.engine = Engine(self.runtime, images=settings.images)
        self.replica = replica_id()
        self.database = Database(settings.database_url, settings.data_path)  # stored responses, jobs (localai.state)
        self.metrics.replica_info.info({"replica": self.replica, "database": "postgresql" if self.database.postgres else "sqlite"})
        self.job_mirror = JobMirror(self.database, self.replica)  # install jobs as every replica sees them
        self.jobs = JobRegistry(listener=self.job_mirror.changed)  # model and backend installs, LocalAI's /models/jobs shape
        self.draining = False  # set on SIGTERM (localai.server.shutdown): new requests get 503
        self.active_requests = 0  # HTTP requests in flight (localai.server.api.traffic)
        self.generated = GeneratedStore(settings.generated_content_path or settings.data_path / "generated" / "images",
                                        settings.generated_max_age, settings.generated_max_files)
        self.generated.cleanup()  # files that expired while the server was down
        from localai.install.backends.registration import refresh as refresh_backends

        self.extensions: dict[str, Any] = {"refresh_backends": refresh_backends}

    def log_summary(self) -> None:
        for info in self.pm.infos.values():
            if info.error:
                log.error("plugin %s (%s): %s", info.name, info.distribution or "in-process", info.error)
            else:
                log.info("plugin %s loaded (%s %s)", info.name, info.distribution or "in-process", info.version or "")
        for b in self.registry.backends.values():
            status = "available" if b.unavailable is None else f"unavailable: {b.unavailable}"
            log.info("backend %s (aliases: %s) from %s: %s", b.name, ", ".join(b.aliases) or "-", b.distribution or b.plugin, status)
        for e in self.catalog.entries.values():
            if e.usable:
                log.info("model %s -> backend %s (%s)", e.name, e.backend.name if e.backend else "?", e.file)
                kind = e.kind
                if kind is not None and kind.base:
                    log.warning("model %s is a base (pretrained) model: it continues text and does not follow "
                                "instructions (%s). For a chat model, install an instruction-tuned one (`localai run "
                                "gemma-3-270m-it-qat` from LocalAI's gallery, 241 MB; `localai models install NAME`; or an "
                                "instruct GGUF in the models folder); `base_model: false` in its YAML says otherwise",
                                e.name, kind.because)
            else:
                log.error("model %s unusable: %s", e.name, "; ".join(e.problems))
        log.info("%d model(s) configured from %s", len(self.catalog.entries), self.settings.models_path)


class APIKeyMiddleware:
    """Every route but the probes needs ``Authorization: Bearer <key>`` or ``x-api-key: <key>``."""

    def __init__(self, app: ASGIApp, keys: list[str], open_paths: set[str] | frozenset[str] = frozenset()) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys if k]
        self.open_paths = OPEN_PATHS | set(open_paths)  # exact paths only: the web UI's static files

    def _allowed(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        candidates = []
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            candidates.append(auth[7:].strip())
        if b"x-api-key" in headers:
            candidates.append(headers[b"x-api-key"].strip())
        ok = False
        for cand in candidates:
            for key in self.keys:
                ok |= hmac.compare_digest(cand, key)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["path"] in self.open_paths or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        if self._allowed(scope):
            await self.app(scope, receive, send)
            return
        err = APIError("authentication", "invalid or missing API key: send Authorization: Bearer <key> or x-api-key: <key>",
                       code="invalid_api_key")
        await error_response(protocol_for_path(scope["path"]), err)(scope, receive, send)


def _field_path(loc: tuple[Any, ...]) -> str | None:
    """``body.stop.list[str].0`` -> ``stop[0]``: drop the body prefix and pydantic's union-member tags."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or str(part) in ("str", "int", "float", "bool", "list", "dict", "none"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or None


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"request body is not valid JSON: {first.get('msg')}", None
    paths = [_field_path(tuple(e.get("loc", ()))) for e in errors]
    tops = [(p or "").split(".")[0].split("[")[0] for p in paths]
    # Errors under the first error's top-level field (a union reports one per form it tried) read as one.
    same = [(p, e) for p, t, e in zip(paths, tops, errors) if t == tops[0]]
    msgs = "; or ".join(dict.fromkeys(e.get("msg", "invalid value") for _, e in same))
    where = list(dict.fromkeys(p for p, _ in same if p))
    at = f" (at {', '.join(where)})" if len(where) > 1 else ""
    others = len(set(tops)) - 1
    more = f" (and problems in {others} more field(s))" if others else ""
    param = paths[0]
    return (f"{param}: {msgs}{at}{more}" if param else f"{msgs}{more}"), param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(protocol_for_path(request.url.path), APIError("invalid_request", message, param=param))

    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError) -> JSONResponse:
        return error_response(protocol_for_path(request.url.path), exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {401: "authentication", 403: "permission", 404: "not_found", 413: "request_too_large", 429: "rate_limit"}.get(
            exc.status_code, "invalid_request" if exc.status_code < 500 else "server")
        err = APIError(kind, str(exc.detail), status=exc.status_code)
        return error_response(protocol_for_path(request.url.path), err)

    async def _core(request: Request, exc: Exception) -> JSONResponse:
        return error_response(protocol_for_path(request.url.path), to_api_error(exc))

    # Registered per class so Starlette's ExceptionMiddleware answers them: a handler for bare
    # ``Exception`` runs in ServerErrorMiddleware, which re-raises and drops the keep-alive connection.
    for cls in (ModelNotFound, ModelUnavailable, WorkerDied, WorkerError, QueueFull, ServerBusy):
        app.add_exception_handler(cls, _core)

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(protocol_for_path(request.url.path), to_api_error(exc))


def create_app(settings: Settings, pm: PluginManager | None = None) -> FastAPI:
    state = State(settings, pm)
    state.log_summary()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.database.open()
        tending = asyncio.create_task(state.job_mirror.tend(state.jobs), name="job leases")
        for hook in state.extensions.get("startup", []):
            await hook(state)
        await state.lifecycle.start()
        yield
        tending.cancel()
        for hook in state.extensions.get("shutdown", []):
            await hook(state)
        await state.lifecycle.stop()
        await state.runtime.shutdown()
        await state.database.close()

    app = FastAPI(title="localai", version=__version__, lifespan=lifespan)
    app.state.localai = state
    install_error_handlers(app)
    from localai.server.api import gallery as gallery_routes
    from localai.server.api import routers

    app.include_router(gallery_routes.install(state))  # before /models/{id}, which would shadow /models/available
    for router in routers.all_routers(state):
        app.include_router(router, prefix="/v1")
        app.include_router(router, include_in_schema=False)
    from localai.server.api import health

    app.include_router(health.router)
    from localai.server.api import backends as backends_api

    app.include_router(backends_api.router)
    from localai.server.api import generated

    app.include_router(generated.router)
    from localai.server.api.disconnect import CancelOnDisconnect

    app.add_middleware(CancelOnDisconnect)
    from localai.server.api import admin
    from localai.server.api.traffic import TrafficMiddleware

    app.include_router(admin.router)
    from localai.server import webui

    app.include_router(webui.router)
    if settings.api_keys:
        app.add_middleware(APIKeyMiddleware, keys=settings.api_keys, open_paths=webui.open_paths())
    app.add_middleware(TrafficMiddleware, state=state)  # outermost: counts 401s too, sees streams end
    return app
