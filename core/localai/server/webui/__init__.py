"""The browser UI served at ``/``: static files from this package plus two read-only JSON views.

The page talks only to the public HTTP API (chat, images, models, backends); ``/webui/api/*`` adds what no
public route gives: each configured model's backend, use cases and problems (``localai models``' data) and
each installed backend's option table (``localai backends show``'s data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from localai.errors import APIError

STATIC_DIR = Path(__file__).parent / "static"
PREFIX = "/webui"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}
# Model output is rendered as DOM text nodes; the policy makes sure nothing inline or foreign ever runs.
HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                                "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


def static_files() -> dict[str, Path]:
    """The UI's files by URL path; only these are served (no path from a request ever reaches the disk)."""
    return {f"{PREFIX}/{p.name}": p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in TYPES}


def open_paths() -> set[str]:
    """The exact paths a browser may load without an API key: the page and its own static files, no API route."""
    return {"/", *static_files()}


def _file(path: Path) -> FileResponse:
    return FileResponse(path, media_type=TYPES[path.suffix], headers=HEADERS)


@router.get("/")
async def index() -> FileResponse:
    return _file(STATIC_DIR / "index.html")


@router.get(PREFIX + "/{name}")
async def static(name: str) -> FileResponse:
    path = static_files().get(f"{PREFIX}/{name}")
    if path is None:
        raise APIError("not_found", f"no web UI file {name!r}")
    return _file(path)


def _option(o: Any) -> dict[str, Any]:
    keys = ("name", "aliases", "type", "default", "env", "help", "supported", "choices")
    out = {k: getattr(o, k, None) for k in keys}
    out["aliases"] = list(out["aliases"] or ())
    out["choices"] = list(out["choices"] or ())
    if out["default"] is not None and not isinstance(out["default"], (str, int, float, bool)):
        out["default"] = str(out["default"])
    return out


@router.get(PREFIX + "/api/models")
async def models(request: Request) -> dict[str, Any]:
    """Every configured model, usable or not, with why not; ``loaded`` when its worker is up."""
    state = request.app.state.localai
    loaded = set(state.runtime.loaded())
    data = []
    for e in state.catalog.entries.values():
        kind = e.kind if e.usable else None
        data.append({
            "id": e.name,
            "backend": e.backend.name if e.backend else None,
            "file": e.file,
            "model_file": e.config.parameters.model,
            "description": getattr(e.config, "description", None),
            "usecases": sorted(e.usecases()),
            "usable": e.usable,
            "problems": list(e.problems),
            "loaded": e.name in loaded,
            "model_type": kind.kind if kind else None,  # base models continue text: the chat page says so
            "model_type_reason": kind.because if kind else None,
        })
    problems = [str(p) for p in state.catalog.problems]
    return {"object": "list", "data": data, "problems": problems}


@router.get(PREFIX + "/api/backends")
async def backends(request: Request) -> dict[str, Any]:
    """The backend plugins this server process can use, with capabilities and option tables."""
    registry = request.app.state.localai.registry
    data = []
    for b in sorted(registry.backends.values(), key=lambda b: b.name):
        data.append({
            "name": b.name, "aliases": list(b.aliases), "distribution": b.distribution or b.plugin,
            "version": b.version, "description": b.description, "capabilities": list(b.capabilities),
            "formats": list(b.formats), "available": b.unavailable is None, "unavailable": b.unavailable,
            "options": [_option(o) for o in b.options],
        })
    return {"object": "list", "data": data, "errors": [str(e) for e in registry.errors]}
