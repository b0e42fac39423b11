"""Decode and check one image: base64 or bytes in, :class:`~localai.types.ImageData` out, or a 400 naming the part.

Pillow reads only the header to learn the format and size (no full decode of a hostile file), then verifies the
file's structure; the limits are documented in docs/vision.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass

from localai.errors import APIError, invalid
from localai.types import ImageData

# The image formats OpenAI, Anthropic and Open Responses accept; Pillow's names -> media types.
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
MEDIA_TYPES = frozenset(FORMATS.values()) | {"image/jpg"}


@dataclass
class ImageSettings:
    """Limits on images in requests (``localai run`` flags ``--image-*``; env ``LOCALAI_IMAGE_*``)."""

    max_bytes: int = 20 * 2**20  # one image's encoded size (OpenAI's limit)
    max_pixels: int = 40_000_000  # width x height, checked before decoding (a decompression bomb never decodes)
    max_images: int = 16  # per request, unless the model's backend says fewer
    fetch_timeout: float = 10.0  # seconds for one URL, redirects included
    max_redirects: int = 3
    allow_private: bool = False  # fetch from loopback, link-local and private addresses (local use only)


def bad_image(where: str | None, message: str) -> APIError:
    return invalid(f"{where}: {message}" if where else message, param=where, code="invalid_image")


def parse_data_url(url: str, where: str | None) -> tuple[str, str]:
    """``data:<media type>;base64,<data>`` -> (media type, base64 text)."""
    head, sep, data = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise bad_image(where, "a data URL must look like data:image/png;base64,<data>")
    return head[5:-7].strip().lower(), data


def decode_base64(data: str, where: str | None, settings: ImageSettings) -> bytes:
    if len(data) > settings.max_bytes * 4 // 3 + 4:
        raise bad_image(where, f"the image is larger than {settings.max_bytes} bytes")
    try:
        return base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise bad_image(where, "the image data is not valid base64") from None


def check(raw: bytes, declared: str | None, where: str | None, settings: ImageSettings) -> ImageData:
    """``raw`` as a checked image: a supported format, matching ``declared`` when given, within the limits."""
    from PIL import Image, UnidentifiedImageError

    if len(raw) > settings.max_bytes:
        raise bad_image(where, f"the image is {len(raw)} bytes; the limit is {settings.max_bytes}")
    if declared is not None and declared not in MEDIA_TYPES:
        raise bad_image(where, f"media type {declared!r} is not supported; use one of image/png, image/jpeg, "
                               "image/webp, image/gif")
    try:
        with Image.open(io.BytesIO(raw)) as img:  # reads the header only
            fmt, (width, height) = img.format, img.size
            if fmt in FORMATS and width * height <= settings.max_pixels:
                img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise bad_image(where, f"the data is not a readable image ({exc.__class__.__name__})") from None
    except Image.DecompressionBombError:
        raise bad_image(where, f"the image has more than {settings.max_pixels} pixels") from None
    media_type = FORMATS.get(fmt or "")
    if media_type is None:
        raise bad_image(where, f"image format {fmt} is not supported; use PNG, JPEG, WebP or GIF")
    if width * height > settings.max_pixels:
        raise bad_image(where, f"the image is {width}x{height} pixels; the limit is {settings.max_pixels} pixels")
    if declared is not None and declared.replace("jpg", "jpeg") != media_type:
        raise bad_image(where, f"the image is {media_type} but was declared {declared}")
    return ImageData(data=base64.b64encode(raw).decode(), media_type=media_type, width=width, height=height,
                     sha256=hashlib.sha256(raw).hexdigest())
