"""``POST /v1/messages`` (plain and streamed) and ``POST /v1/messages/count_tokens``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from localai.server.api import sse
from localai.server.api.anthropic import render, stream
from localai.server.api.anthropic.models import CountTokensBody, MessagesBody
from localai.server.api.anthropic.translate import to_request
from localai.server.api.deps import EngineDep

router = APIRouter()


@router.post("/messages")
async def create_message(body: MessagesBody, engine: EngineDep) -> Any:
    req = to_request(body)
    # Validates and prepares (once) before the 200 goes out; a stream needs the prompt's size up front.
    gen = await engine.open(req, "chat", count_prompt=bool(body.stream))
    if not body.stream:
        return render.message(await gen.collect(), gen.entry.name, req.stop)
    return sse.response(stream.events(gen.events, gen.entry.name, req.stop, gen.prompt_tokens or 0))


@router.post("/messages/count_tokens")
async def count_tokens(body: CountTokensBody, engine: EngineDep) -> dict[str, int]:
    return {"input_tokens": await engine.count_prompt_tokens(to_request(body), "chat")}
