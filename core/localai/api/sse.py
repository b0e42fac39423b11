"""Server-sent events through sse-starlette, framed the way OpenAI-style clients parse them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent


def event(data: Any, name: str | None = None) -> ServerSentEvent:
    """One event; dicts become compact JSON. ``name`` adds an ``event:`` line (Anthropic, Responses)."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return ServerSentEvent(data=payload, event=name)


def response(events: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    """``data:`` lines and ``\\n\\n`` separators only: no keep-alive comments (LLMStack's parser breaks on them)."""
    return EventSourceResponse(
        events,
        sep="\n",
        ping=0,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
