"""Images clients send in chat messages: fetched (:mod:`.fetch`), decoded and checked (:mod:`.images`) once in the
API process (:mod:`.resolve`), so a backend only ever sees validated bytes and bad input gets a 400 before any
worker is involved."""

from localai.media.images import ImageSettings

__all__ = ["ImageSettings"]
