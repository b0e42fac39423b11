"""LocalAI's model admin routes and the Prometheus endpoint (all behind the API key).

``GET /backend/monitor`` lists loaded models with their state; ``POST /backend/load`` and
``POST /backend/shutdown`` load and unload one on request; ``GET /metrics`` is Prometheus' text format.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from localai.errors import APIError
from localai.server.metrics import CONTENT_TYPE

router = APIRouter(tags=["admin"])


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(min_length=1, max_length=512, description="a configured model's name")


@router.get("/backend/monitor")
async def monitor(request: Request, model: str | None = None) -> dict[str, Any]:
    """Loaded models: backend, pid, state (loading, ready, busy, unloading), in-flight and queued requests,
    RSS, loaded since, last used, expires at. ``?model=`` narrows it to one model (404 when it is not loaded)."""
    rows = request.app.state.localai.lifecycle.monitor()
    if model is not None:
        rows = [r for r in rows if r["model"] == model]
        if not rows:
            raise APIError("not_found", f"model {model!r} is not loaded", param="model", code="model_not_loaded")
    return {"models": rows}


@router.post("/backend/load")
async def load(body: ModelRef, request: Request) -> dict[str, Any]:
    """Load a model now (waits until it is ready); a no-op when it already is."""
    state = request.app.state.localai
    entry = state.runtime.entry(body.model, "chat")
    loaded = await state.runtime.load(entry)
    rows = [r for r in state.lifecycle.monitor() if r["model"] == loaded.entry.name]
    return rows[0] if rows else {"model": loaded.entry.name, "state": loaded.worker.state, "pid": loaded.worker.pid}


@router.post("/backend/shutdown")
async def shutdown(body: ModelRef, request: Request) -> dict[str, Any]:
    """Unload a model now: its worker stops (requests still in flight on it fail) and the next request reloads it."""
    runtime = request.app.state.localai.runtime
    entry = runtime.entry(body.model, "chat")
    if not await runtime.unload(entry.name, "manual"):
        raise APIError("not_found", f"model {entry.name!r} is not loaded", param="model", code="model_not_loaded")
    return {"model": entry.name, "status": "unloaded"}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format)."""
    return Response(request.app.state.localai.metrics.render(), media_type=CONTENT_TYPE)
