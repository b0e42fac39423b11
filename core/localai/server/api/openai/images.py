"""``POST /v1/images/generations``, ``/v1/images/edits`` and ``/v1/images/variations`` (OpenAI's shape, LocalAI's extras).

Translates into one :class:`localai.types.ImageRequest` for :meth:`Engine.generate_image` and back. LocalAI's
extras: a negative prompt after ``|`` in ``prompt``, ``step`` (denoising steps), ``seed``, and ``file`` (an input
image for image-to-image on ``generations``). With ``response_format`` absent every item carries both
``b64_json`` (what LLMStack reads) and ``url`` (what OpenAI-style clients read).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from localai.errors import APIError, invalid
from localai.server.api.deps import get_engine
from localai.server.api.openai.common import now
from localai.types import ImageRequest, ImageResult

router = APIRouter()

SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
MAX_INPUT_IMAGE = 32 * 1024 * 1024


class ImageFields(BaseModel):
    """Fields every image route shares. Unknown fields are ignored; ``quality``/``style``/``user`` are accepted."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model: str | None = None
    n: int = Field(default=1, ge=1, le=10)
    size: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    output_format: Literal["png"] | None = None
    seed: int | None = None
    step: int | None = Field(default=None, ge=1, le=1000)
    quality: str | None = None
    style: str | None = None
    user: str | None = None

    def dimensions(self) -> tuple[int | None, int | None]:
        """``"WxH"`` -> (W, H); absent or ``auto`` -> the model's default."""
        if self.size is None or self.size.strip().lower() in ("", "auto"):
            return None, None
        m = SIZE.match(self.size)
        if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
            raise invalid(f"size: {self.size!r} is not a size; give WIDTHxHEIGHT with positive multiples of 8, "
                          "e.g. 512x512", param="size", code="invalid_size")
        return int(m.group(1)), int(m.group(2))


class GenerationsBody(ImageFields):
    prompt: str = Field(min_length=1)
    file: str | None = None  # LocalAI: an input image (base64 or data URL) for image-to-image
    strength: float | None = Field(default=None, gt=0, le=1)


def split_prompt(prompt: str) -> tuple[str, str | None]:
    """LocalAI's ``positive|negative`` prompt."""
    positive, sep, negative = prompt.partition("|")
    return positive.strip(), (negative.strip() or None) if sep else None


def decode_image_arg(value: str, param: str) -> str:
    """A base64 image or a ``data:`` URL -> plain base64 (checked to decode); URLs to fetch are refused."""
    value = value.strip()
    if value.startswith(("http://", "https://")):
        raise invalid(f"{param}: image URLs are not fetched; send the image itself as base64 or a data: URL", param=param)
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{param}: not valid base64 image data", param=param) from None
    if not raw:
        raise invalid(f"{param}: the image is empty", param=param)
    return base64.b64encode(raw).decode("ascii")


async def run(request: Request, fields: ImageFields, prompt: str, init_image: str | None = None,
              strength: float | None = None) -> dict[str, Any]:
    """Generate through the engine and render OpenAI's response.

    A client that leaves cancels this handler (``CancelOnDisconnect``), and with it the denoising in the worker.
    """
    engine = get_engine(request)
    width, height = fields.dimensions()
    positive, negative = split_prompt(prompt)
    image_request = ImageRequest(model=fields.model or "", prompt=positive, negative_prompt=negative, n=fields.n,
                                 width=width, height=height, seed=fields.seed, steps=fields.step,
                                 init_image=init_image, strength=strength)
    entry, result = await engine.generate_image(image_request)
    if result.finish_reason != "stop" or len(result.images) != fields.n:
        raise APIError("server", f"model {entry.name!r} returned {len(result.images)} of {fields.n} images "
                                 f"({result.finish_reason})", code="backend_error")
    return await render(request, fields, result)


async def render(request: Request, fields: ImageFields, result: ImageResult) -> dict[str, Any]:
    store = request.app.state.localai.generated
    base = str(request.base_url).rstrip("/")
    data = []
    for b64 in result.images:
        item: dict[str, Any] = {}
        if fields.response_format in (None, "b64_json"):
            item["b64_json"] = b64
        if fields.response_format in (None, "url"):
            name = await run_in_threadpool(store.save_png, base64.b64decode(b64))
            item["url"] = f"{base}/generated-images/{name}"
        data.append(item)
    body: dict[str, Any] = {"created": now(), "data": data, "output_format": "png"}
    if fields.size:
        body["size"] = fields.size.strip()
    return body


@router.post("/images/generations")
async def generations(body: GenerationsBody, request: Request) -> dict[str, Any]:
    init_image = decode_image_arg(body.file, "file") if body.file else None
    if body.strength is not None and init_image is None:
        raise invalid("strength applies to image-to-image only: send an input image in file", param="strength")
    return await run(request, body, body.prompt, init_image, body.strength)


async def form_fields(request: Request, cls: type[ImageFields], required_prompt: bool) -> tuple[ImageFields, str, str]:
    """Parse a multipart image form: its scalar fields, prompt and the one input image (base64)."""
    try:
        form = await request.form(max_part_size=MAX_INPUT_IMAGE)
    except Exception as exc:  # noqa: BLE001 - a malformed multipart body is the client's
        raise invalid(f"expected a multipart/form-data body with an image: {exc}") from None
    if form.get("mask") is not None:
        raise invalid("mask (inpainting) is not supported; send the image without a mask to edit it whole",
                      param="mask", code="mask_not_supported")
    images = [v for key in ("image", "image[]") for v in form.getlist(key)]
    if not images:
        raise invalid("image is required: send the input image as a file in the multipart field 'image'", param="image")
    if len(images) > 1:
        raise invalid(f"{len(images)} input images sent; this endpoint takes one", param="image")
    image = images[0]
    raw = await image.read() if isinstance(image, UploadFile) else str(image).encode()
    if isinstance(image, UploadFile):
        b64 = base64.b64encode(raw).decode("ascii") if raw else ""
    else:
        b64 = decode_image_arg(raw.decode(), "image")
    if not b64:
        raise invalid("image: the uploaded file is empty", param="image")
    scalars = {k: v for k, v in form.multi_items() if isinstance(v, str) and k not in ("image", "image[]", "mask")}
    try:
        fields = cls.model_validate(scalars)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(x) for x in err["loc"]) or None
        raise invalid(f"{param}: {err['msg']}", param=param) from None
    prompt = str(form.get("prompt") or "")
    if required_prompt and not prompt.strip():
        raise invalid("prompt is required", param="prompt")
    return fields, prompt, b64


class EditFields(ImageFields):
    strength: float | None = Field(default=None, gt=0, le=1)


@router.post("/images/edits")
async def edits(request: Request) -> dict[str, Any]:
    """Image-to-image on the model's pipeline (``diffusers.img2img: true``); 400 where it has none."""
    fields, prompt, image = await form_fields(request, EditFields, required_prompt=True)
    return await run(request, fields, prompt, image, getattr(fields, "strength", None))


@router.post("/images/variations")
async def variations(request: Request) -> dict[str, Any]:
    """Variations: image-to-image with an empty prompt (the model's pipeline must take images)."""
    fields, _, image = await form_fields(request, EditFields, required_prompt=False)
    return await run(request, fields, "", image, getattr(fields, "strength", None))
