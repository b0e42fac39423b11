"""Client errors: a domain exception as an :class:`localai.errors.APIError` (:func:`to_api_error`), rendered in
each protocol's own shape."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from localai.errors import (
    INVALID,
    UNSUPPORTED,
    APIError,
    ModelNotFound,
    ModelUnavailable,
    QueueFull,
    ServerBusy,
    WorkerDied,
    WorkerError,
    error_code,
)

OPENAI_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "invalid_request_error",
    "permission": "invalid_request_error",
    "not_found": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "server": "server_error",
    "unavailable": "server_error",
    "timeout": "server_error",
    "overloaded": "server_error",
}
ANTHROPIC_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "server": "api_error",
    "unavailable": "overloaded_error",
    "timeout": "timeout_error",
    "overloaded": "overloaded_error",
}
RESPONSES_TYPES = {
    "invalid_request": "invalid_request",
    "authentication": "invalid_request",
    "permission": "invalid_request",
    "not_found": "not_found",
    "request_too_large": "invalid_request",
    "rate_limit": "too_many_requests",
    "server": "server_error",
    "unavailable": "server_error",
    "timeout": "server_error",
    "overloaded": "too_many_requests",
}


def to_api_error(exc: BaseException) -> APIError:
    """A core exception as the client's error (kind, status, code); anything unexpected is a 500 with its message."""
    if isinstance(exc, APIError):
        return exc
    code = error_code(exc)
    if isinstance(exc, ModelNotFound):
        msg = str(exc) + (". List available models with GET /v1/models" if exc.name else "")
        return APIError("not_found", msg, param="model", code=code)
    if isinstance(exc, ModelUnavailable):
        return APIError("server", str(exc), param="model", code=code)
    if isinstance(exc, WorkerDied):
        kind = {"busy_timeout": "timeout", "shutdown": "unavailable"}.get(exc.kind or "", "server")
        return APIError(kind, str(exc), code=code)
    if isinstance(exc, ServerBusy):
        return APIError("unavailable", str(exc), code=code, retry_after=exc.retry_after)
    if isinstance(exc, QueueFull):
        return APIError("rate_limit", str(exc), code=code, retry_after=exc.retry_after)
    if isinstance(exc, WorkerError):
        if code == "queue_full":
            return APIError("rate_limit", str(exc), code=code, retry_after=1)
        if exc.kind in (UNSUPPORTED, INVALID):
            return APIError("invalid_request", f"model {exc.model!r}: {exc}", code=code)
        return APIError("server", f"model {exc.model!r} failed: {exc}", code=code)
    return APIError("server", f"internal error: {type(exc).__name__}: {exc}", code=code)


def protocol_for_path(path: str) -> str:
    p = path[3:] if path.startswith("/v1/") else path
    if p.startswith("/messages"):
        return "anthropic"
    if p.startswith("/responses"):
        return "responses"
    return "openai"


def error_body(protocol: str, err: APIError) -> dict[str, Any]:
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": ANTHROPIC_TYPES.get(err.kind, "api_error"), "message": err.message}}
    types = RESPONSES_TYPES if protocol == "responses" else OPENAI_TYPES
    return {"error": {"message": err.message, "type": types.get(err.kind, "server_error"), "param": err.param, "code": err.code}}


def for_protocol(protocol: str, err: APIError) -> APIError:
    """Anthropic says a full queue or a busy server is 529 ``overloaded_error``; OpenAI and Responses say 429 / 503."""
    if protocol == "anthropic" and (err.kind == "rate_limit" and err.code == "queue_full" or err.kind == "unavailable"):
        return APIError("overloaded", err.message, code=err.code, retry_after=err.retry_after)
    return err


def error_response(protocol: str, err: APIError) -> JSONResponse:
    err = for_protocol(protocol, err)
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
    return JSONResponse(error_body(protocol, err), status_code=err.status, headers=headers)
