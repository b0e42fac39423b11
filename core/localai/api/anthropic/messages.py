"""``POST /v1/messages`` (plain and streamed) and ``POST /v1/messages/count_tokens``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from localai.api import sse
from localai.api.anthropic import render, stream
from localai.api.anthropic.models import CountTokensBody, MessagesBody
from localai.api.anthropic.translate import to_request
from localai.engine import Engine, collect

router = APIRouter()


@router.post("/messages")
async def create_message(body: MessagesBody, request: Request) -> Any:
    engine: Engine = request.app.state.localai.engine
    req = to_request(body)
    loaded = await engine.load(body.model, "chat")
    model = loaded.entry.name
    stops = req.stop
    events = await engine.start(req, "chat")  # validates and prepares before the 200 goes out
    if not body.stream:
        result = await collect(events)
        return render.message(result, model, stops)
    try:
        input_tokens = await engine.count_prompt_tokens(req, "chat")
    except BaseException:
        await events.aclose()  # type: ignore[attr-defined]
        raise
    return sse.response(stream.events(events, model, stops, input_tokens))


@router.post("/messages/count_tokens")
async def count_tokens(body: CountTokensBody, request: Request) -> dict[str, int]:
    engine: Engine = request.app.state.localai.engine
    return {"input_tokens": await engine.count_prompt_tokens(to_request(body), "chat")}
