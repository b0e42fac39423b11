"""The OpenAI-compatible API: thin translators into :class:`localai.engine.Engine`."""

from fastapi import APIRouter

from localai.api.openai import completions, models

router = APIRouter()
router.include_router(models.router)
router.include_router(completions.router)
