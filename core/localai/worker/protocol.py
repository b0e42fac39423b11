"""Wire format between the server and a worker: one JSON object per line over a Unix socket.

Server to worker: ``{"op": "load" | "generate" | "image" | "call" | "cancel" | "shutdown", "id": N, ...}``.
Worker to server: ``{"id": N, "type": "accepted" | "chunk" | "end" | "result" | "error", ...}``;
a generation answers ``accepted`` (or ``error``) first, once the backend validated and queued it;
an ``image`` request answers one ``result`` (or ``error``) and can be cancelled like a generation.
"""

from __future__ import annotations

import json
from typing import Any

FD_ENV = "LOCALAI_WORKER_FD"

# Error kinds a worker reports; the server maps them to HTTP statuses.
UNSUPPORTED = "unsupported"  # NotImplementedError: the engine cannot do what was asked (400)
INVALID = "invalid_request"  # ValueError: the request does not fit the model (400)
BACKEND = "backend_error"  # anything else (500)


def encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    return json.loads(line)


QUEUE_FULL = "queue_full"  # localai.errors.QueueFull: the model's request queue is full (429 / 529)


def error_kind(exc: BaseException) -> str:
    from localai.errors import QueueFull

    if isinstance(exc, QueueFull):
        return QUEUE_FULL
    if isinstance(exc, NotImplementedError):
        return UNSUPPORTED
    if isinstance(exc, ValueError):
        return INVALID
    return BACKEND
