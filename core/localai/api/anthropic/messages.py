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
    req.incremental = bool(body.stream)
    loaded = await engine.load(body.model, "chat")
    model = loaded.entry.name
    stops = req.stop
    # Validates and prepares (once) before the 200 goes out; a stream needs the prompt's size up front.
    events, input_tokens = await engine.start_counted(req, "chat", count=bool(body.stream))
    if not body.stream:
        return render.message(await collect(events), model, stops)
    return sse.response(stream.events(events, model, stops, input_tokens or 0))


@router.post("/messages/count_tokens")
async def count_tokens(body: CountTokensBody, request: Request) -> dict[str, int]:
    engine: Engine = request.app.state.localai.engine
    return {"input_tokens": await engine.count_prompt_tokens(to_request(body), "chat")}
