"""LocalAI's model gallery routes: ``/models/apply``, ``/models/jobs``, ``/models/available``, ``/models/delete``.

Installs and deletes run as jobs (``state.jobs``, kind ``"model"``); polling a job never fails because the job
did: its error is in the job's JSON. Mounted without the ``/v1`` prefix, as LocalAI does.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from localai.errors import APIError
from localai.install.models.index import Galleries, GalleryError, GalleryRef, GalleryUnreachable
from localai.install.models.install import GalleryService
from localai.install.models.merge import ApplyRequest
from localai.install.models.paths import UnsafePath, check_model_name

log = logging.getLogger("localai.install.models")
router = APIRouter(tags=["models"])


def service_for(state: Any) -> GalleryService:
    settings = state.settings
    refs = [GalleryRef.model_validate(g) for g in (getattr(settings, "galleries", None) or [])]
    refresh = state.extensions.get("refresh_backends")
    return GalleryService(
        Path(settings.models_path), Galleries(refs), catalog=state.catalog, registry=state.registry,
        backends_path=getattr(settings, "backends_path", None),
        concurrency=int(getattr(settings, "download_concurrency", 4) or 4),
        refresh_backends=(lambda: refresh(state)) if refresh else None,
        backend_galleries=list(getattr(settings, "backend_galleries", None) or []),
    )


def install(state: Any) -> APIRouter:
    state.extensions["gallery"] = service_for(state)
    return router


def _svc(request: Request) -> GalleryService:
    return request.app.state.localai.extensions["gallery"]


def _status_url(request: Request, uuid: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/models/jobs/{uuid}"


@router.post("/models/apply")
async def apply_model(body: ApplyRequest, request: Request) -> dict[str, str]:
    """Install a gallery model (``id``: ``gallery@name`` or ``name``) or a model config ``url``; returns the job."""
    if not body.id and not body.url:
        raise APIError("invalid_request", "give \"id\" (a gallery model, \"gallery@name\" or \"name\") or \"url\" (a model config)", param="id")
    if body.id and body.url:
        raise APIError("invalid_request", "give either \"id\" or \"url\", not both", param="url")
    if body.name:
        try:
            check_model_name(body.name)
        except UnsafePath as exc:
            raise APIError("invalid_request", str(exc), param="name") from exc
    svc = _svc(request)
    try:
        await run_in_threadpool(svc.check_request_sources, body)
    except GalleryError as exc:
        raise APIError("invalid_request", str(exc), param="url" if body.url else "files") from exc
    jobs = request.app.state.localai.jobs
    label = body.name or (body.id.partition("@")[2] or body.id) if body.id else (body.name or body.url)
    state = request.app.state.localai
    loop = asyncio.get_running_loop()

    def unload(name: str) -> None:  # from the job's thread: stop a loaded worker of a model being reinstalled
        if name in state.runtime.loaded():
            asyncio.run_coroutine_threadsafe(_unload(state, name), loop).result(60)

    job = jobs.submit("model", label, lambda job: svc.install(body, job, before_write=unload))
    await state.job_mirror.published()
    log.info("model install job %s: %s", job.uuid, body.id or body.url)
    return {"uuid": job.uuid, "status": _status_url(request, job.uuid)}


@router.get("/models/jobs")
async def list_jobs(request: Request) -> dict[str, Any]:
    """Every model job, by uuid (LocalAI's shape), whichever replica ran it."""
    state = request.app.state.localai
    return await state.job_mirror.all(state.jobs, "model")


def _not_found(uuid: str) -> APIError:
    return APIError("not_found", f"no job with uuid {uuid!r}", param="uuid", code="job_not_found")


@router.get("/models/jobs/{uuid}")
async def get_job(uuid: str, request: Request) -> dict[str, Any]:
    state = request.app.state.localai
    job = await state.job_mirror.get(state.jobs, uuid)
    if job is None:
        raise _not_found(uuid)
    return job


async def _cancel(uuid: str, request: Request) -> dict[str, Any]:
    state = request.app.state.localai
    asked = await state.job_mirror.cancel(state.jobs, uuid)
    if asked is None:
        raise _not_found(uuid)
    if not asked:
        job = await state.job_mirror.get(state.jobs, uuid) or {}
        raise APIError("invalid_request", f"job {uuid} already finished ({job.get('message')})", status=409, code="job_finished")
    log.info("job %s: cancel requested", uuid)
    return {"success": True, "message": "Operation cancelled"}


@router.post("/models/jobs/{uuid}/cancel")
async def cancel_job(uuid: str, request: Request) -> dict[str, Any]:
    return await _cancel(uuid, request)


@router.post("/api/operations/{uuid}/cancel")
async def cancel_operation(uuid: str, request: Request) -> dict[str, Any]:
    """LocalAI's own cancel route (its web UI uses it), for any job kind."""
    return await _cancel(uuid, request)


@router.get("/models/available")
async def available_models(request: Request, gallery: str | None = None, refresh: bool = False) -> list[dict[str, Any]]:
    """Entries of every configured gallery, each marked ``installed`` or not (LocalAI's ``gallery.Metadata``)."""
    svc = _svc(request)
    try:
        models, errors = await run_in_threadpool(svc.available, gallery, refresh)
    except GalleryError as exc:
        raise APIError("not_found", str(exc), param="gallery") from exc
    for err in errors:
        log.warning("GET /models/available: %s", err)
    if errors and not models:
        raise APIError("server", str(GalleryUnreachable(errors)), status=502, code="gallery_unreachable")
    return models


@router.get("/models/galleries")
async def list_galleries(request: Request) -> list[dict[str, Any]]:
    return [r.model_dump() for r in _svc(request).galleries.refs]


async def _unload(state: Any, name: str) -> None:
    runtime = state.runtime
    unload = getattr(runtime, "unload", None)
    if unload is not None:
        await unload(name)
        return
    worker = runtime.loaded().get(name)
    if worker is not None:
        await worker.stop()
        runtime._workers.pop(name, None)


@router.post("/models/delete/{name}")
async def delete_model(name: str, request: Request) -> dict[str, str]:
    """Delete an installed model: its config, its gallery record, and the files no other model uses."""
    svc = _svc(request)
    try:
        svc.config_file_of(name)
    except UnsafePath as exc:
        raise APIError("invalid_request", str(exc), param="name") from exc
    except LookupError as exc:
        raise APIError("not_found", str(exc), param="name", code="model_not_found") from exc
    except GalleryError as exc:
        raise APIError("invalid_request", str(exc), param="name") from exc
    state = request.app.state.localai
    await _unload(state, name)
    job = state.jobs.submit("model", name, lambda job: svc.delete(name, job), deletion=True)
    await state.job_mirror.published()
    return {"uuid": job.uuid, "status": _status_url(request, job.uuid)}


@router.post("/models/reload")
async def reload_models(request: Request) -> dict[str, Any]:
    """Re-read the models folder (LocalAI's route), e.g. after copying YAML files in by hand."""
    catalog = request.app.state.localai.catalog
    catalog.reload()
    return {"success": True, "message": f"{len(catalog.entries)} model configuration(s) loaded"}
