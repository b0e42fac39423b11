"""Liveness and readiness probes; never behind the API key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 once at least one model is configured and usable."""
    catalog = request.app.state.localai.catalog
    usable = [e.name for e in catalog.entries.values() if e.usable]
    if not usable:
        return JSONResponse({"status": "not ready", "reason": "no usable model is configured"}, status_code=503)
    return JSONResponse({"status": "ready", "models": usable})
