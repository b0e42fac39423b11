"""Every domain exception, in one leaf module: it imports nothing from localai, so any layer (engine, runtime,
worker, backends in their workers) raises these without import cycles. Turning them into each API's error shape is
:mod:`localai.server.api.errors`'; :func:`error_code` is the one machine-readable code per failure both the API errors and
the metrics' ``reason`` label use."""

from __future__ import annotations

import signal

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

# The error kinds a worker reports for a failed request (localai.runtime.worker.protocol sends them).
UNSUPPORTED = "unsupported"  # NotImplementedError: the engine cannot do what was asked (400)
INVALID = "invalid_request"  # ValueError: the request does not fit the model (400)
BACKEND = "backend_error"  # anything else (500)
QUEUE_FULL = "queue_full"  # QueueFull: the model's request queue is full (429 / 529)


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


class ModelNotFound(Exception):
    def __init__(self, name: str | None, usecase: str | None = None) -> None:
        self.name = name
        if name is None:
            msg = f"no model serving {usecase or 'this request'} is configured"
        else:
            msg = f'model "{name}" not found'
        super().__init__(msg)


class ModelUnavailable(Exception):
    """The model is configured but cannot be served (broken config, missing backend, load failure)."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"model {name!r} cannot be loaded: {reason}")


class ServerBusy(Exception):
    """The server cannot take this request now (no room to load the model, shutting down); retry later."""

    def __init__(self, message: str, code: str = "server_busy", retry_after: int | None = 5) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class WorkerError(Exception):
    """A request failed inside the worker; ``kind`` is one of the kinds above (``UNSUPPORTED``, ...)."""

    def __init__(self, model: str, kind: str, message: str) -> None:
        super().__init__(message)
        self.model = model
        self.kind = kind


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


class WorkerDied(Exception):
    """The worker process ended while a request was in flight.

    ``kind`` says why when the server stopped it on purpose (``busy_timeout``, ``shutdown``, ``unload``);
    ``None`` means it crashed.
    """

    def __init__(self, model: str, returncode: int | None, kind: str | None = None, reason: str | None = None) -> None:
        self.model = model
        self.returncode = returncode
        self.kind = kind
        if reason:
            msg = f"the worker serving model {model!r} was stopped: {reason}; the request was lost"
        else:
            msg = f"the worker serving model {model!r} {describe_exit(returncode)}; the request was lost, retry to reload the model"
        super().__init__(msg)


def error_code(exc: BaseException) -> str | None:
    """The failure's machine-readable code (the API error's ``code``; ``None`` where the API gives none)."""
    if isinstance(exc, (APIError, ServerBusy)):
        return exc.code
    if isinstance(exc, ModelNotFound):
        return "model_not_found"
    if isinstance(exc, ModelUnavailable):
        return "model_load_failed"
    if isinstance(exc, WorkerDied):
        return {"busy_timeout": "worker_timeout", "shutdown": "server_shutting_down"}.get(exc.kind or "", "worker_died")
    if isinstance(exc, QueueFull):
        return "queue_full"
    if isinstance(exc, WorkerError):
        return {QUEUE_FULL: "queue_full", UNSUPPORTED: "unsupported", INVALID: None}.get(exc.kind, "backend_error")
    return "internal_error"
