"""The ``/v1/responses`` endpoints: create, retrieve (JSON or stream resume), cancel, delete, input items."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from localai.errors import APIError, invalid
from localai.server.api import sse
from localai.server.api.deps import EngineDep
from localai.server.api.responses import items, resource, translate
from localai.server.api.responses.emitter import Emitter
from localai.server.api.responses.models import CreateBody
from localai.server.api.responses.runner import Run, Runs
from localai.server.api.responses.store import RUNNING, Store
from localai.state import Database
from localai.state.leases import LEASE, RENEW, keep

log = logging.getLogger("localai.responses")

router = APIRouter()


POLL = 0.1  # how often a replica that does not run a response reads its progress (streams, cancel, delete)


class Service:
    """The store and the running responses; created with the app, opened by its lifespan."""

    def __init__(self, db: Database, owner: str) -> None:
        self.store = Store(db)
        self.runs = Runs()
        self.postgres = db.postgres
        self.owner = owner  # this replica, as the store records who runs a response
        self._tending: asyncio.Task[None] | None = None

    async def startup(self, state: Any) -> None:
        # The embedded database belongs to this process alone: whatever it left running is over. A shared one
        # may hold other replicas' live responses: only lapsed leases are.
        failed = await self.store.fail_unowned(time.time() if self.postgres else None)
        if failed:
            log.warning("marked %d response(s) left unfinished by a stopped server as failed", len(failed))
        self._tending = asyncio.create_task(keep(self._upkeep, "responses"), name="responses leases")

    async def shutdown(self, state: Any) -> None:
        if self._tending is not None:
            self._tending.cancel()
        await self.runs.shutdown()

    async def _upkeep(self) -> None:
        """Renew this replica's leases, cancel what another replica asked to, fail responses whose owner stopped."""
        ids = [rid for rid, run in self.runs.active.items() if not run.done]
        for rid in await self.store.renew(self.owner, ids, time.time() + LEASE):
            run = self.runs.get(rid)
            if run is not None:
                log.info("response %s: cancelled through another replica", rid)
                run.cancel()
        lapsed = await self.store.fail_unowned(time.time())
        if lapsed:
            log.warning("marked %d response(s) whose replica stopped renewing them as failed: %s",
                        len(lapsed), ", ".join(lapsed))


def service(request: Request) -> Service:
    return request.app.state.localai.extensions["responses"]


def not_found(rid: str, param: str | None = None) -> APIError:
    return APIError("not_found", f"response {rid!r} not found", param=param, code="response_not_found")


async def _context(svc: Service, body: CreateBody) -> list[dict[str, Any]]:
    """The conversation before this request's input: the previous response's context and output."""
    if not body.previous_response_id:
        return []
    rid = body.previous_response_id
    previous = await _current(svc, rid)
    if previous is None:
        raise not_found(rid, "previous_response_id")
    if previous["status"] in ("queued", "in_progress"):
        raise invalid(f"previous response {rid!r} is still {previous['status']}; wait for it to finish",
                      param="previous_response_id")
    return [*await svc.store.context(rid), *previous["output"]]


async def _current(svc: Service, rid: str) -> dict[str, Any] | None:
    run = svc.runs.get(rid)
    if run is not None:
        return copy.deepcopy(run.response)
    return await svc.store.get(rid)


async def _events(run_events: AsyncIterator[tuple[str, str]], run: Run | None, cancel_on_exit: bool) -> AsyncIterator[bytes]:
    """SSE for a run's events, ending with ``[DONE]``; a foreground stream's generation stops when its client leaves."""
    finished = False
    try:
        async for type_, data in run_events:
            yield sse.event(data, name=type_)
        finished = True
        yield sse.event("[DONE]")
    finally:
        if cancel_on_exit and not finished and run is not None:
            run.cancel()


async def _stored_events(svc: Service, rid: str, after: int) -> AsyncIterator[tuple[str, str]]:
    """A response's events from the store, following it while it runs on another replica."""
    while True:
        current = await svc.store.get(rid)  # read before the events: a finished response's last events are in
        for seq, type_, data in await svc.store.events_after(rid, after):
            after = seq
            yield type_, data
        if current is None or current["status"] not in RUNNING:
            return
        await asyncio.sleep(POLL)


async def _settled(svc: Service, rid: str) -> dict[str, Any] | None:
    """Wait until a response running on another replica has ended (its owner saw a cancel, or its lease lapsed)."""
    deadline = time.monotonic() + LEASE + 2 * RENEW
    while True:
        current = await svc.store.get(rid)
        if current is None or current["status"] not in RUNNING:
            return current
        if time.monotonic() > deadline:
            raise APIError("timeout", f"response {rid!r} runs on another replica that did not stop it in time",
                           code="cancel_timeout")
        await asyncio.sleep(POLL)


@router.post("/responses")
async def create(body: CreateBody, request: Request, engine: EngineDep) -> Any:
    svc = service(request)
    if body.background and not body.stored:
        raise invalid("background responses must be stored: drop store: false", param="store")
    engine.resolve(body.model or None, "chat")  # an unknown model is a 404 before the conversation is read
    context = await _context(svc, body)
    new_items = await items.normalize(body.input, svc.store.item)
    conversation = [*context, *new_items]
    greq = translate.generate_request(body, body.model or "", items.to_messages(body.instructions, conversation, len(context)))
    gen = await engine.open(greq, "chat")  # errors here still get their HTTP status
    stream = gen.events

    background = bool(body.background)
    response = resource.new(body, rid=items.new_id("resp"), model=gen.entry.name, config=gen.entry.config,
                            status="queued" if background else "in_progress")
    emitter = Emitter(response)
    run = Run(emitter, background=background, store=svc.store if body.stored else None)
    if body.stored:
        await svc.store.create(response, conversation, svc.owner, time.time() + LEASE)
    first = [emitter.lifecycle("response.created")]
    if not background:
        first.append(emitter.lifecycle("response.in_progress"))
    run.publish(first, save=True)
    svc.runs.start(run, stream)
    if body.stream:
        return sse.response(_events(run.follow(), run, cancel_on_exit=not background))
    if background:
        return copy.deepcopy(response) | {"output": []}
    try:
        await run.wait()
    except BaseException:
        run.cancel()
        raise
    if run.response["status"] == "failed":  # a plain request gets the failure as an HTTP error (it stays stored)
        raise run.error or APIError("server", run.response["error"]["message"], code="backend_error")
    return run.response


@router.get("/responses/{response_id}")
async def retrieve(response_id: str, request: Request, stream: bool = False,
                   starting_after: int | None = Query(default=None, ge=-1), include: list[str] | None = Query(default=None),
                   ) -> Any:
    svc = service(request)
    run = svc.runs.get(response_id)
    if not stream:
        current = await _current(svc, response_id)
        if current is None:
            raise not_found(response_id)
        return current
    after = -1 if starting_after is None else starting_after
    if run is not None:
        return sse.response(_events(run.follow(after), run, cancel_on_exit=False))
    if await svc.store.get(response_id) is None:
        raise not_found(response_id)
    return sse.response(_events(_stored_events(svc, response_id, after), None, cancel_on_exit=False))


@router.post("/responses/{response_id}/cancel")
async def cancel(response_id: str, request: Request) -> Any:
    svc = service(request)
    run = svc.runs.get(response_id)
    if run is not None:
        if not run.background:
            raise invalid("only background responses can be cancelled", param="response_id")
        run.cancel()
        await run.wait()
        return run.response
    current = await svc.store.get(response_id)
    if current is None:
        raise not_found(response_id)
    if current["status"] == "cancelled":
        return current
    if not current.get("background"):
        raise invalid("only background responses can be cancelled", param="response_id")
    if current["status"] in RUNNING:  # running on another replica: it cancels when it next renews its lease
        await svc.store.request_cancel(response_id)
        settled = await _settled(svc, response_id)
        if settled is None:
            raise not_found(response_id)
        return settled
    raise invalid(f"cannot cancel a response whose status is {current['status']}", param="response_id")


@router.delete("/responses/{response_id}")
async def delete(response_id: str, request: Request) -> dict[str, Any]:
    svc = service(request)
    run = svc.runs.get(response_id)
    if run is not None:
        run.cancel()
        await run.wait()
    else:
        current = await svc.store.get(response_id)
        if current is not None and current["status"] in RUNNING:  # on another replica: stopped before it goes
            await svc.store.request_cancel(response_id)
            await _settled(svc, response_id)
    if not await svc.store.delete(response_id):
        raise not_found(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@router.get("/responses/{response_id}/input_items")
async def input_items(response_id: str, request: Request, after: str | None = None,
                      limit: int = Query(default=20, ge=1, le=100), order: Literal["asc", "desc"] = "desc",
                      include: list[str] | None = Query(default=None)) -> dict[str, Any]:
    svc = service(request)
    if await _current(svc, response_id) is None:
        raise not_found(response_id)
    data = await svc.store.context(response_id)
    if order == "desc":
        data = data[::-1]
    if after is not None:
        ids = [it["id"] for it in data]
        if after not in ids:
            raise invalid(f"after: no input item {after!r} in response {response_id!r}", param="after")
        data = data[ids.index(after) + 1:]
    page = data[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(data) > limit}
