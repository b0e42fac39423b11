"""One error type for every API; each protocol adapter renders it in its own shape."""

from __future__ import annotations

from localai.runtime import ModelNotFound, ModelUnavailable, ServerBusy
from localai.worker import protocol
from localai.worker.client import WorkerDied, WorkerError

# kind -> HTTP status. Adapters map kinds to their own type names.
STATUS = {
    "invalid_request": 400,
    "authentication": 401,
    "permission": 403,
    "not_found": 404,
    "request_too_large": 413,
    "rate_limit": 429,
    "server": 500,
    "unavailable": 503,
    "timeout": 504,
    "overloaded": 529,
}


class APIError(Exception):
    """An error meant for the client: a kind (see ``STATUS``), a message, and optionally the offending param."""

    def __init__(self, kind: str, message: str, *, param: str | None = None, code: str | None = None,
                 status: int | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param
        self.code = code
        self.status = status or STATUS.get(kind, 500)
        self.retry_after = retry_after


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError("invalid_request", message, param=param, code=code)


class QueueFull(Exception):
    """A model's request queue is full; the client should retry after ``retry_after`` seconds."""

    def __init__(self, model: str, retry_after: int = 1) -> None:
        super().__init__(f"model {model!r} is busy: its request queue is full; retry shortly")
        self.model = model
        self.retry_after = retry_after


def to_api_error(exc: BaseException) -> APIError:
    """Map core exceptions to client errors; anything unexpected is a 500 with its message."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ModelNotFound):
        msg = str(exc) + (". List available models with GET /v1/models" if exc.name else "")
        return APIError("not_found", msg, param="model", code="model_not_found")
    if isinstance(exc, ModelUnavailable):
        return APIError("server", str(exc), param="model", code="model_load_failed")
    if isinstance(exc, WorkerDied):
        if exc.kind == "busy_timeout":
            return APIError("timeout", str(exc), code="worker_timeout")
        if exc.kind == "shutdown":
            return APIError("unavailable", str(exc), code="server_shutting_down")
        return APIError("server", str(exc), code="worker_died")
    if isinstance(exc, ServerBusy):
        return APIError("unavailable", str(exc), code=exc.code, retry_after=exc.retry_after)
    if isinstance(exc, QueueFull):
        return APIError("rate_limit", str(exc), code="queue_full", retry_after=exc.retry_after)
    if isinstance(exc, WorkerError):
        if exc.kind == protocol.QUEUE_FULL:
            return APIError("rate_limit", str(exc), code="queue_full", retry_after=1)
        if exc.kind in (protocol.UNSUPPORTED, protocol.INVALID):
            return APIError("invalid_request", f"model {exc.model!r}: {exc}", code="unsupported" if exc.kind == protocol.UNSUPPORTED else None)
        return APIError("server", f"model {exc.model!r} failed: {exc}", code="backend_error")
    return APIError("server", f"internal error: {type(exc).__name__}: {exc}", code="internal_error")
