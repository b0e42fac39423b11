"""Turn a chat request's image parts into checked bytes before its backend sees it.

Data URLs are decoded, http(s) URLs fetched (:mod:`localai.media.fetch`, concurrently), and every image checked
(:mod:`localai.media.images`); each failure is a 400 naming the request field the part came from. A model that
does not take images, or fewer than the request carries, refuses here, before anything is fetched.
"""

from __future__ import annotations

import asyncio

from localai.errors import invalid
from localai.media import fetch as fetching
from localai.media.images import ImageSettings, check, decode_base64, parse_data_url
from localai.types import ContentPart, GenerateRequest, ImageData, ModelInfo


def image_parts(request: GenerateRequest) -> list[ContentPart]:
    return [p for m in request.messages or [] for p in m.images()]


async def resolve(request: GenerateRequest, info: ModelInfo, model: str, settings: ImageSettings,
                  resolver: fetching.Resolver = fetching.system_resolver) -> GenerateRequest:
    """``request`` with every image part's ``image`` set (and its URL dropped), or a 400."""
    parts = image_parts(request)
    if not parts:
        return request
    if not info.vision:
        raise invalid(f"model {model!r} does not support image input", param=parts[0].where or "messages",
                      code="vision_not_supported")
    limit = min(settings.max_images, info.max_images or settings.max_images)
    if len(parts) > limit:
        raise invalid(f"the request carries {len(parts)} images; model {model!r} takes at most {limit}",
                      param=parts[limit].where or "messages", code="too_many_images")
    todo = [p for p in parts if p.image is None]
    images = await asyncio.gather(*(_load(p, settings, resolver) for p in todo))
    done = dict(zip(map(id, todo), images))
    messages = []
    for m in request.messages or []:
        if isinstance(m.content, list) and any(p.type == "image" for p in m.content):
            content = [p.model_copy(update={"image": done[id(p)], "image_url": None}) if id(p) in done else p
                       for p in m.content]
            m = m.model_copy(update={"content": content})
        messages.append(m)
    return request.model_copy(update={"messages": messages})


async def _load(part: ContentPart, settings: ImageSettings, resolver: fetching.Resolver) -> ImageData:
    url, where = part.image_url or "", part.where
    if url.startswith("data:"):
        media_type, data = parse_data_url(url, where)
        return check(decode_base64(data, where, settings), media_type, where, settings)
    if url.startswith(("http://", "https://")):
        return check(await fetching.fetch(url, where, settings, resolver), None, where, settings)
    raise invalid(f"{where or 'image'}: an image must be a data: URL or an http(s) URL", param=where,
                  code="invalid_image")
