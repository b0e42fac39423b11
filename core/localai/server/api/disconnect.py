"""Cancel a request's work when its client goes away before the response starts.

Streams already stop when their client disconnects (localai.server.api.sse listens for it). A plain request does
not: its handler awaits the whole generation, and nothing tells it the client gave up, so an abandoned
request would decode to ``max_tokens`` while later requests queue behind it. This middleware watches the
connection once the request body has been read and cancels the handler task on ``http.disconnect``; the
cancellation unwinds through the engine, whose generation streams cancel themselves in the worker.

Work that outlives its request by design (background Responses) runs in its own task and is not affected.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("localai.server")


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = {"body_done": False, "started": False, "disconnected": False}
        forwarded: asyncio.Queue[Message] = asyncio.Queue()
        watcher: asyncio.Task[None] | None = None
        handler: asyncio.Task[None]

        async def watch() -> None:
            while True:
                message = await receive()
                await forwarded.put(message)
                if message["type"] == "http.disconnect":
                    state["disconnected"] = True
                    if not state["started"] and not handler.done():
                        log.info("client disconnected before the response of %s %s: cancelling its work",
                                 scope.get("method"), scope.get("path"))
                        handler.cancel()
                    return

        async def wrapped_receive() -> Message:
            nonlocal watcher
            if state["body_done"]:
                return await forwarded.get()  # the watcher owns the connection now
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                state["body_done"] = True
                watcher = asyncio.create_task(watch())
            elif message["type"] == "http.disconnect":
                state["disconnected"] = True
            return message

        async def wrapped_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        async def handle() -> None:
            await self.app(scope, wrapped_receive, wrapped_send)

        handler = asyncio.create_task(handle())
        try:
            await asyncio.shield(handler)
        except asyncio.CancelledError:
            if not handler.done():  # we ourselves are being cancelled (server shutdown): take the handler with us
                handler.cancel()
                raise
            if not (handler.cancelled() and state["disconnected"]):
                raise
            # Cancelled because the client left: nobody is there to answer.
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
