"""LocalAI's backend management routes: installed backends, the gallery, installs as background jobs, deletes.

Installs over HTTP take gallery entries only (``id``: ``name`` or ``gallery@name``): a plugin folder or an arbitrary
pip requirement would let any API-key holder run code of their choosing; the CLI installs those.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from localai.errors import APIError

log = logging.getLogger("localai.server.api.backends")

router = APIRouter(tags=["backends"])


class ApplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="gallery entry: name, alias or gallery@name")
    name: str | None = Field(default=None, description="install under this name instead of the entry's")
    alias: str | list[str] | None = None
    force: bool = False


def _state(request: Request) -> Any:
    return request.app.state.localai


def _galleries(state: Any) -> list[str]:
    return list(getattr(state.settings, "backend_galleries", None) or [])


def _public(meta: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in meta.items() if k != "backends"}
    out["backends"] = [{"name": b["name"], "aliases": b.get("aliases", []), "capabilities": b.get("capabilities", [])}
                       for b in meta.get("backends") or []]
    out["system"] = False
    out["available"] = meta.get("unavailable") is None
    return out


@router.get("/backends")
def list_backends(request: Request) -> list[dict[str, Any]]:
    """Installed backends: each environment's metadata, then the plugins in the server's own environment."""
    from localai.install.backends import installed

    state = _state(request)
    out = [_public(m) for m in installed(state.settings.backends_path)]
    for b in sorted(state.registry.backends.values(), key=lambda b: b.name):
        if b.environment is None:
            out.append({"name": b.name, "alias": b.aliases[0] if b.aliases else "", "aliases": list(b.aliases),
                        "version": b.version, "distribution": b.distribution, "capabilities": list(b.capabilities),
                        "description": b.description, "system": True, "available": b.unavailable is None,
                        "unavailable": b.unavailable})
    return out


@router.get("/backends/available")
def available_backends(request: Request) -> list[dict[str, Any]]:
    from localai.install.backends import available
    from localai.install.backends.gallery import GalleryError

    state = _state(request)
    try:
        system = [n for n, b in state.registry.backends.items() if b.environment is None]
        return available(state.settings.backends_path, _galleries(state), system_backends=system)
    except GalleryError as exc:
        raise APIError("server", str(exc), code="gallery_error") from None


@router.post("/backends/apply")
def apply_backend(body: ApplyRequest, request: Request) -> dict[str, str]:
    from localai.install.backends import InstallError, install
    from localai.install.backends.gallery import GalleryError, find, galleries
    from localai.install.backends.registration import activate
    from localai.names import InvalidName, backend_dir, validate_name

    state = _state(request)
    aliases = [body.alias] if isinstance(body.alias, str) else list(body.alias or [])
    try:
        for n in ([body.name] if body.name else []) + aliases:
            validate_name(n)
        gals = galleries(_galleries(state) or None)
    except InvalidName as exc:
        raise APIError("invalid_request", str(exc), param="name") from None
    except GalleryError as exc:
        raise APIError("server", str(exc), code="gallery_error") from None
    entry = find(body.id, gals)
    if entry is None:
        raise APIError("not_found", f"backend {body.id!r} is not in any backend gallery (GET /backends/available lists them)",
                       param="id", code="backend_not_found")
    name = validate_name(body.name or entry.name)
    if not body.force and backend_dir(state.settings.backends_path, name).exists():
        raise APIError("invalid_request", f"backend {name!r} is already installed; send \"force\": true to reinstall it",
                       param="id", code="backend_already_installed", status=409)

    def work(job: Any) -> dict[str, Any]:
        def progress(message: str, fraction: float | None) -> None:
            job.update(message=message, **({"progress": fraction * 100} if fraction is not None else {}))

        try:
            meta = install(f"{entry.gallery}@{entry.name}", backends_path=state.settings.backends_path, name=name,
                           aliases=aliases, force=body.force, progress=progress,
                           cancelled=lambda: job.cancel_requested, galleries=_galleries(state))
        except InstallError as exc:
            if job.cancel_requested:
                job.check_cancelled()
            raise RuntimeError(str(exc)) from None
        activate(state, meta)
        return _public(meta)

    job = state.jobs.submit("backend", name, work)
    state.job_mirror.published_blocking()
    return {"uuid": job.uuid, "status": f"{str(request.base_url).rstrip('/')}/backends/jobs/{job.uuid}"}


async def _job(state: Any, uuid: str) -> dict[str, Any]:
    job = await state.job_mirror.get(state.jobs, uuid)
    if job is None or job.get("kind") != "backend":
        raise APIError("not_found", f"no backend job {uuid!r}", param="uuid", code="job_not_found")
    return job


@router.get("/backends/jobs")
async def list_jobs(request: Request) -> dict[str, dict[str, Any]]:
    state = _state(request)
    return await state.job_mirror.all(state.jobs, "backend")


@router.get("/backends/jobs/{uuid}")
async def get_job(uuid: str, request: Request) -> dict[str, Any]:
    return await _job(_state(request), uuid)


@router.post("/backends/jobs/{uuid}/cancel")
async def cancel_job(uuid: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    await _job(state, uuid)
    if not await state.job_mirror.cancel(state.jobs, uuid):
        raise APIError("invalid_request", f"backend job {uuid!r} already finished", param="uuid", code="job_finished", status=409)
    return await _job(state, uuid)


@router.post("/backends/delete/{name}")
def delete_backend(name: str, request: Request) -> dict[str, Any]:
    """Uninstall (as a job, LocalAI's shape); ``used_by`` names the models configured with it."""
    from localai.install.backends import store, uninstall
    from localai.install.backends.registration import deactivate, models_using, names_of
    from localai.names import InvalidName, validate_name

    state = _state(request)
    try:
        validate_name(name)
    except InvalidName as exc:
        raise APIError("invalid_request", str(exc), param="name") from None
    meta = store.find(state.settings.backends_path, name)
    if meta is None:
        raise APIError("not_found", f"backend {name!r} is not installed (GET /backends lists installed backends)",
                       param="name", code="backend_not_found")
    used_by = models_using(state.catalog, names_of(meta))
    if used_by:
        log.warning("deleting backend %s used by model(s) %s", meta["name"], ", ".join(used_by))

    def work(job: Any) -> dict[str, Any]:
        removed = uninstall(meta["name"], backends_path=state.settings.backends_path)
        deactivate(state, removed)
        return {"name": removed["name"]}

    job = state.jobs.submit("backend", meta["name"], work, deletion=True)
    state.job_mirror.published_blocking()
    return {"uuid": job.uuid, "status": f"{str(request.base_url).rstrip('/')}/backends/jobs/{job.uuid}", "used_by": used_by}
