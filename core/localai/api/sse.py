"""Server-sent events through sse-starlette, framed the way OpenAI-style clients parse them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

SEP = "\n"


def event(data: Any, name: str | None = None) -> ServerSentEvent:
    """One event; dicts become compact JSON. ``name`` adds an ``event:`` line (Anthropic, Responses).

    Lines end with ``\n``, as OpenAI, Anthropic and llama.cpp send: sse-starlette's default is ``\r\n``, which
    the spec allows but line-splitting parsers (the Open Responses compliance suite's) read as no events at all.
    """
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return ServerSentEvent(data=payload, event=name, sep=SEP)


def response(events: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    """``data:`` lines and ``\\n\\n`` separators only: no keep-alive comments (LLMStack's parser breaks on them)."""
    return EventSourceResponse(
        events,
        sep=SEP,
        ping=0,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
