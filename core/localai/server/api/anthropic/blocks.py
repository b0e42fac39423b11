"""Anthropic content blocks -> internal :class:`localai.types.Message` objects."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from localai.errors import invalid
from localai.types import ContentPart, Message, ToolCall


class _Block(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Base64Source(_Block):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str = Field(min_length=1)


class URLSource(_Block):
    type: Literal["url"]
    url: str = Field(pattern=r"^(https?|data):")


class TextBlock(_Block):
    type: Literal["text"]
    text: str


class ImageBlock(_Block):
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]

    def part(self, where: str) -> ContentPart:
        s = self.source
        url = f"data:{s.media_type};base64,{s.data}" if isinstance(s, Base64Source) else s.url
        return ContentPart(type="image", image_url=url, where=f"{where}.source")


class ToolUseBlock(_Block):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Block):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] | None = None
    is_error: bool = False


class ThinkingBlock(_Block):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(_Block):
    type: Literal["redacted_thinking"]
    data: str = ""


Block = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]
_BLOCK = TypeAdapter(Block)
SUPPORTED = ("text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking")


def parse_block(raw: dict[str, Any], where: str) -> Any:
    """One block, or a 400 that names where it is and what is wrong with it."""
    kind = raw.get("type")
    if kind not in SUPPORTED:
        raise invalid(f"{where}: content block type {kind!r} is not supported (supported: {', '.join(SUPPORTED)})", param=where)
    try:
        return _BLOCK.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"][1:])
        raise invalid(f"{where}{'.' + loc if loc else ''}: {first['msg']}", param=where) from None


def tool_result_message(block: ToolResultBlock, where: str) -> Message:
    """A tool message; images stay as parts (so a model without vision refuses them clearly)."""
    content = block.content
    images: list[ContentPart]
    if content is None:
        text, images = "", []
    elif isinstance(content, str):
        text, images = content, []
    else:
        text = "\n".join(b.text for b in content if isinstance(b, TextBlock))
        images = [b.part(f"{where}.content.{k}") for k, b in enumerate(content) if isinstance(b, ImageBlock)]
    if block.is_error:
        text = f"Error: {text}"
    body: str | list[ContentPart] = [ContentPart(type="text", text=text), *images] if images else text
    return Message(role="tool", tool_call_id=block.tool_use_id, content=body)


def user_messages(blocks: list[Any], where: str) -> list[Message]:
    """Tool results become tool messages (Anthropic puts them first); the rest one user message. ``where`` is the
    message's path (``messages.3``): errors about a block name ``messages.3.content.<i>``."""
    out = [tool_result_message(b, f"{where}.content.{i}") for i, b in enumerate(blocks) if isinstance(b, ToolResultBlock)]
    parts: list[ContentPart] = []
    for i, b in enumerate(blocks):
        if isinstance(b, TextBlock):
            parts.append(ContentPart(type="text", text=b.text))
        elif isinstance(b, ImageBlock):
            parts.append(b.part(f"{where}.content.{i}"))
    if parts or not out:
        out.append(Message(role="user", content=parts))
    return out


def assistant_message(blocks: list[Any]) -> Message:
    text = "".join(b.text for b in blocks if isinstance(b, TextBlock))
    reasoning = "".join(b.thinking for b in blocks if isinstance(b, ThinkingBlock))
    calls = [ToolCall(id=b.id, name=b.name, arguments=json.dumps(b.input, ensure_ascii=False))
             for b in blocks if isinstance(b, ToolUseBlock)]
    return Message(role="assistant", content=text, tool_calls=calls or None, reasoning=reasoning or None)


def to_messages(role: str, content: str | list[dict[str, Any]], where: str) -> list[Message]:
    if isinstance(content, str):
        return [Message(role=role, content=content)]  # type: ignore[arg-type]
    blocks = [parse_block(raw, f"{where}.content.{i}") for i, raw in enumerate(content)]
    if role == "assistant":
        bad: list[str] = [b.type for b in blocks if isinstance(b, (ImageBlock, ToolResultBlock))]
        if bad:
            raise invalid(f"{where}: assistant messages cannot contain {bad[0]} blocks", param=where)
        return [assistant_message(blocks)]
    bad = [b.type for b in blocks if isinstance(b, (ToolUseBlock, ThinkingBlock, RedactedThinkingBlock))]
    if bad:
        raise invalid(f"{where}: user messages cannot contain {bad[0]} blocks", param=where)
    return user_messages(blocks, where)
