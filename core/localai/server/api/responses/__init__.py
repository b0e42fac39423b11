"""The Open Responses API (``/v1/responses``): streaming, tools, stored and chained responses, background mode.

:func:`install` wires the store into the app's lifespan and returns the router.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from localai.server.api.responses.routes import Service, router


def install(state: Any) -> APIRouter:
    """Create the responses service on ``state`` (its store in the state database) and hook it into start-up/shut-down."""
    svc = Service(state.database, state.replica)
    state.extensions["responses"] = svc
    state.extensions.setdefault("startup", []).append(svc.startup)
    state.extensions.setdefault("shutdown", []).append(svc.shutdown)
    return router


__all__ = ["install"]
