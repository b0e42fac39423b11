"""The protocol routers the app mounts (each under ``/v1`` and without the prefix, as LocalAI does)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter


def all_routers(state: Any) -> list[APIRouter]:
    from localai.server.api import responses
    from localai.server.api.anthropic import router as anthropic_router
    from localai.server.api.openai import router as openai_router

    return [openai_router, anthropic_router, responses.install(state)]
