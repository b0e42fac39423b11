"""The Anthropic Messages API: thin translators into :class:`localai.engine.Engine`."""

from fastapi import APIRouter

from localai.server.api.anthropic import messages

router = APIRouter()
router.include_router(messages.router)
