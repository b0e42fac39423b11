"""The OpenAI-compatible API: thin translators into :class:`localai.engine.Engine`."""

from fastapi import APIRouter

from localai.server.api.openai import chat, completions, embeddings, images, models, tokenize

router = APIRouter()
router.include_router(models.router)
router.include_router(completions.router)
router.include_router(chat.router)
router.include_router(embeddings.router)
router.include_router(tokenize.router)
router.include_router(images.router)
