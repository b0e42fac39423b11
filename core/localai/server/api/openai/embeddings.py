"""``POST /v1/embeddings``: float or base64 (little-endian float32, what the SDK decodes) vectors."""

from __future__ import annotations

import base64
import struct
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from localai.errors import invalid
from localai.server.api.deps import EngineDep

router = APIRouter()


class EmbeddingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    def inputs(self) -> list[str] | list[list[int]]:
        """A flat list of inputs: one string, strings, one token array, or token arrays."""
        value = self.input
        if isinstance(value, str):
            items: list[Any] = [value]
        elif value and all(isinstance(x, int) for x in value):
            items = [list(value)]
        else:
            items = list(value)
        if not items:
            raise invalid("input must not be empty", param="input")
        for i, item in enumerate(items):
            if (isinstance(item, str) and not item) or (isinstance(item, list) and not item):
                raise invalid(f"input[{i}] is empty; every input needs at least one character or token", param="input")
            if isinstance(item, list) and any(t < 0 for t in item):
                raise invalid(f"input[{i}] has a negative token id", param="input")
        return items


def encode(vector: list[float], fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


@router.post("/embeddings")
async def embeddings(body: EmbeddingsBody, engine: EngineDep) -> dict[str, Any]:
    inputs = body.inputs()
    entry, result = await engine.embed(body.model or None, inputs, body.dimensions)
    data = [{"object": "embedding", "index": i, "embedding": encode(v, body.encoding_format)}
            for i, v in enumerate(result.vectors)]
    return {"object": "list", "data": data, "model": entry.name,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}}
