"""Wire format between the server and a worker: one JSON object per line over a Unix socket.

Server to worker: ``{"op": "load" | "generate" | "image" | "call" | "cancel" | "shutdown", "id": N, ...}``.
Worker to server: ``{"id": N, "type": "accepted" | "chunk" | "end" | "result" | "error", ...}``;
a generation answers ``accepted`` (or ``error``) first, once the backend validated and queued it;
an ``image`` request answers one ``result`` (or ``error``) and can be cancelled like a generation.
"""

from __future__ import annotations

import base64
import itertools
import json
from array import array
from typing import Any

import orjson

# Error kinds a worker reports (defined with the exceptions); the server maps them to HTTP statuses.
from localai.errors import BACKEND, INVALID, QUEUE_FULL, UNSUPPORTED, QueueFull  # noqa: F401 - re-exported

FD_ENV = "LOCALAI_WORKER_FD"



def encode(msg: dict[str, Any]) -> bytes:
    """One line of compact JSON. orjson: every streamed token crosses this twice (worker and server) while the
    model decodes on the same cores; the stdlib stays the fallback for what orjson refuses (ints past 64 bits)."""
    try:
        return orjson.dumps(msg, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)  # what the stdlib fallback wrote (NaN, huge ints)


def pack_result(result: Any) -> Any:
    """A hook's result as JSON. Embedding vectors travel as base64 float32 (what every engine computes): a float's
    JSON repr costs microseconds, and a batch of 64 MiniLM vectors is 24,576 of them."""
    from localai.types import EmbeddingResult

    if isinstance(result, EmbeddingResult):
        flat = array("f", itertools.chain.from_iterable(result.vectors))
        return {"vectors_f32": base64.b64encode(flat.tobytes()).decode("ascii"),
                "dims": [len(v) for v in result.vectors], "prompt_tokens": result.prompt_tokens}
    return result.model_dump(mode="json") if hasattr(result, "model_dump") else result


def unpack_result(data: Any) -> Any:
    """:func:`pack_result`'s JSON back to plain data (``EmbeddingResult`` fields)."""
    if isinstance(data, dict) and "vectors_f32" in data:
        flat = array("f")
        flat.frombytes(base64.b64decode(data["vectors_f32"]))
        values = flat.tolist()
        vectors, start = [], 0
        for n in data["dims"]:
            vectors.append(values[start:start + n])
            start += n
        return {"vectors": vectors, "prompt_tokens": data.get("prompt_tokens", 0)}
    return data


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, QueueFull):
        return QUEUE_FULL
    if isinstance(exc, NotImplementedError):
        return UNSUPPORTED
    if isinstance(exc, ValueError):
        return INVALID
    return BACKEND
