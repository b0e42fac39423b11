"""Stop work for a client that has gone: non-streamed requests poll for the disconnect while they wait."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from contextlib import suppress
from typing import TypeVar

from fastapi import Request

from localai.errors import APIError

log = logging.getLogger("localai.api")

T = TypeVar("T")

CLIENT_CLOSED = 499  # nginx's "client closed request": the response is never read


async def unless_disconnected(request: Request, work: Awaitable[T], poll: float = 0.25) -> T:
    """Await ``work``; if the client disconnects first, cancel it (the worker stops between steps)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll)
            if task in done:
                return task.result()
            if await request.is_disconnected():
                log.info("%s %s: client disconnected; cancelling its work", request.method, request.url.path)
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await task
                raise APIError("invalid_request", "the client disconnected", code="client_disconnected",
                               status=CLIENT_CLOSED)
    finally:
        if not task.done():
            task.cancel()
