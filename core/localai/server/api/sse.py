"""Server-sent events, framed the way OpenAI-style clients parse them, on the shortest path per event.

Each event is encoded once, when it is produced, into the bytes of its frame; the response only sends them.
A streamed token crosses this module once per token, while the model decodes on the same cores: sse-starlette's
response (a cancel scope and a timeout wrapper around every send, re-encoding each event) cost a measurable share
of decode speed on a 2-core machine, so the response here does only what our streams need: send the frames,
and stop the stream (closing its generator, which cancels the generation) when the client goes away.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the SSE spec's line ends (str.splitlines knows more)


def event(data: Any, name: str | None = None) -> bytes:
    """One event's frame; dicts become compact JSON. ``name`` adds an ``event:`` line (Anthropic, Responses).

    Lines end with ``\\n``, as OpenAI, Anthropic and llama.cpp send (the spec also allows ``\\r\\n``, which
    line-splitting parsers such as the Open Responses compliance suite's read as no events at all). A payload
    with line breaks (only a raw string can have them: JSON escapes its own) becomes one ``data:`` line per line.
    """
    head = b"event: " + name.encode() + b"\ndata: " if name else b"data: "
    if not isinstance(data, str):
        try:
            return head + orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS) + b"\n\n"
        except TypeError:  # what orjson refuses (ints past 64 bits): the stdlib writes it, escaping line breaks too
            return head + _dumps(data).encode() + b"\n\n"
    if "\n" in data or "\r" in data:
        data = _LINE_BREAK.sub("\ndata: ", data)
    return head + data.encode() + b"\n\n"


class EventStream(Response):
    """A ``text/event-stream`` response of pre-encoded frames. No keep-alive comments (LLMStack's parser
    breaks on them). When the client disconnects, the frames' generator is closed at its current ``await``."""

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> None:
        self.frames = frames
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as tg:
            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()  # the client has gone: stop producing for nobody

            tg.start_soon(watch)
            try:
                await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                async for frame in self.frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                aclose = getattr(self.frames, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()
            tg.cancel_scope.cancel()


def response(frames: AsyncIterator[bytes]) -> EventStream:
    return EventStream(frames)
