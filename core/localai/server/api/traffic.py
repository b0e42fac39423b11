"""ASGI middleware around every request: HTTP metrics and in-flight count, body-size limit, draining.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through untouched and a request
counts as in flight until its last byte is sent, which graceful shutdown waits for.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from localai.errors import APIError
from localai.server.api.errors import error_response, protocol_for_path
from localai.server.metrics import current_api

PROBES = {"/healthz", "/readyz"}
API_ROOTS = {"chat", "completions", "embeddings", "messages", "responses", "models", "tokenize", "detokenize", "images"}


def api_for_path(path: str) -> str:
    """The ``api`` label: openai, anthropic or responses for the protocol routes, ``other`` for the rest."""
    first = path.split("/")[1] if path.count("/") else ""
    if first == "v1" or first in API_ROOTS:
        return protocol_for_path(path)
    return "other"


def route_label(scope: Scope, path: str) -> str:
    """The matched route's template (``/v1/responses/{response_id}``), never the raw path (unbounded labels)."""
    template = getattr(scope.get("route"), "path", None)
    if not template:
        return "unmatched"
    if path.startswith("/v1/") and not template.startswith("/v1/"):
        template = "/v1" + template  # routers are mounted with and without /v1; FastAPI reports the router's own path
    return template


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the limit; FastAPI passes HTTPExceptions through to the 413 handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the server's limit of {limit} bytes "
                              f"({limit / 2**20:g} MiB, --upload-limit)")


class TrafficMiddleware:
    """Counts and times each request, refuses bodies over ``state.settings.upload_limit`` (413) and,
    while the server drains for shutdown, answers every new request but ``/healthz`` with 503."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        api = api_for_path(path)
        token = current_api.set(api)
        metrics = self.state.metrics
        started = time.monotonic()
        status = 500
        response_started = False

        async def send_tracked(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        self.state.active_requests += 1
        try:
            if self.state.draining and path != "/healthz":
                err = APIError("unavailable", "the server is shutting down and accepts no new requests",
                               code="server_shutting_down", retry_after=5)
                response = error_response(protocol_for_path(path), err)
                response.headers["Connection"] = "close"
                await response(scope, receive, send_tracked)
                return
            limit = self.state.settings.upload_limit
            if limit and self._declared_length(scope) > limit:
                await self._too_large(scope, receive, send_tracked, limit)
                return
            try:
                await self.app(scope, self._limited(receive, limit) if limit else receive, send_tracked)
            except BodyTooLarge:
                if response_started:
                    raise
                await self._too_large(scope, receive, send_tracked, limit)
        finally:
            self.state.active_requests -= 1
            current_api.reset(token)
            route_path = route_label(scope, path)
            method = scope.get("method", "GET")
            metrics.http_requests.labels(api, route_path, method, str(status)).inc()
            metrics.http_latency.labels(api, route_path, method).observe(time.monotonic() - started)

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope.get("headers") or []:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    @staticmethod
    def _limited(receive: Receive, limit: int) -> Receive:
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        exc = BodyTooLarge(limit)
        err = APIError("request_too_large", str(exc.detail), code="request_too_large")
        response = error_response(protocol_for_path(scope["path"]), err)
        response.headers["Connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)
