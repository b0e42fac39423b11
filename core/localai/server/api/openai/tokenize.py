"""``POST /v1/tokenize`` and ``POST /v1/detokenize`` (llama.cpp server's shapes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from localai.server.api.deps import EngineDep

router = APIRouter()


class TokenizeBody(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model: str | None = None
    content: str
    add_special: bool = False


class DetokenizeBody(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model: str | None = None
    tokens: list[Annotated[int, Field(ge=0)]]


@router.post("/tokenize")
async def tokenize(body: TokenizeBody, engine: EngineDep) -> dict[str, Any]:
    _, tokens = await engine.tokenize(body.model or None, body.content, add_special=body.add_special)
    return {"tokens": tokens}


@router.post("/detokenize")
async def detokenize(body: DetokenizeBody, engine: EngineDep) -> dict[str, Any]:
    _, text = await engine.detokenize(body.model or None, body.tokens)
    return {"content": text}
