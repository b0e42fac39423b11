"""``GET /generated-images/<file>.png``: images the image routes stored for their ``url`` answers.

Behind the API key like every route; names are unguessable and only names the store hands out are served.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from localai.errors import APIError

router = APIRouter()


@router.get("/generated-images/{name}")
async def generated_image(name: str, request: Request) -> FileResponse:
    path = request.app.state.localai.generated.file(name)
    if path is None:
        raise APIError("not_found", f"generated image {name!r} not found (it may have been cleaned up)", code="not_found")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})
