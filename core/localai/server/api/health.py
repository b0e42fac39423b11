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
    """200 once at least one model is configured and usable, the state database answers and every preloaded model
    is loaded."""
    state = request.app.state.localai
    usable = [e.name for e in state.catalog.entries.values() if e.usable]
    if getattr(state, "draining", False):
        return JSONResponse({"status": "not ready", "reason": "the server is shutting down"}, status_code=503)
    if not usable:
        return JSONResponse({"status": "not ready", "reason": "no usable model is configured"}, status_code=503)
    database = getattr(state, "database", None)
    problem = await database.check() if database is not None else None
    if problem is not None:
        return JSONResponse({"status": "not ready", "reason": problem}, status_code=503)
    lifecycle = getattr(state, "lifecycle", None)
    if lifecycle is not None:
        ready, loading, failed = lifecycle.readiness()
        if not ready:
            reason = "; ".join([*(f"preloading {n}" for n in loading), *(f"preload of {n} failed: {e}" for n, e in failed.items())])
            return JSONResponse({"status": "not ready", "reason": reason, "loading": loading, "failed": failed}, status_code=503)
    return JSONResponse({"status": "ready", "models": usable})
