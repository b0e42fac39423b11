"""``GET /v1/models`` and ``GET /v1/models/{id}``."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request

from localai.errors import APIError
from localai.registry.catalog import ModelEntry

router = APIRouter()


def model_object(entry: ModelEntry) -> dict[str, Any]:
    created = 0
    if entry.model_path is not None:
        try:
            created = int(os.path.getmtime(entry.model_path))
        except OSError:
            created = 0
    # capabilities (an extension, as Ollama's /api/show has it): what the model serves, "vision" when it takes images
    out: dict[str, Any] = {"id": entry.name, "object": "model", "created": created,
                           "owned_by": entry.backend.name if entry.backend else "localai",
                           "capabilities": sorted(entry.usecases() - {"grammar", "tokenize"})}
    kind = entry.kind
    if kind is not None:  # an extension too: a base model continues text rather than following instructions
        out["model_type"] = kind.kind
        out["model_type_reason"] = kind.because
    return out


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    catalog = request.app.state.localai.catalog
    return {"object": "list", "data": [model_object(e) for e in catalog.entries.values() if e.usable]}


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    entry = request.app.state.localai.catalog.get(model_id)
    if entry is None or not entry.usable:
        raise APIError("not_found", f"model {model_id!r} not found", param="model", code="model_not_found")
    return model_object(entry)
