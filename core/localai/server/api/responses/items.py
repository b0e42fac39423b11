"""Conversation items: validating input items, giving them ids, and turning items into chat messages.

Items are kept in one normalised shape (the shape output items have, every field present), so a
stored response's input, its output and a chained request's new input concatenate into one
conversation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from localai.errors import APIError, invalid
from localai.types import ContentPart, Message, ToolCall

Item = dict[str, Any]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["input_text", "output_text", "input_image", "refusal", "text", "summary_text", "reasoning_text"]
    text: str | None = None
    refusal: str | None = None
    image_url: str | None = None
    detail: Literal["low", "high", "auto", "original"] | None = None


class _Item(BaseModel):
    """What every input item may carry: an id (one is given where missing) and a status (normalised away)."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    status: str | None = None


class _MessageItem(_Item):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[_Part]
    phase: str | None = None


class _FunctionCallItem(_Item):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str


class _FunctionCallOutputItem(_Item):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[_Part]


class _ReasoningItem(_Item):
    type: Literal["reasoning"]
    summary: list[_Part] = Field(default_factory=list)
    content: list[_Part] | None = None
    encrypted_content: str | None = None


class _ItemReference(BaseModel):
    type: Literal["item_reference"] | None = "item_reference"
    id: str


def _message(m: _MessageItem) -> Item:
    parts = [_Part(type="input_text", text=m.content)] if isinstance(m.content, str) else m.content
    content: list[dict[str, Any]] = []
    for p in parts:
        if m.role == "assistant":
            if p.type == "input_image":
                raise invalid("assistant messages cannot contain images", param="input")
            text = p.refusal if p.type == "refusal" else p.text
            if p.type == "refusal":
                content.append({"type": "refusal", "refusal": text or ""})
            else:
                content.append({"type": "output_text", "text": text or "", "annotations": [], "logprobs": []})
        elif p.type == "input_image":
            if not p.image_url:
                raise invalid("input_image needs image_url (an http(s) URL or a base64 data URL); file_id is not supported",
                              param="input")
            if not p.image_url.startswith(("http://", "https://", "data:")):
                raise invalid("input_image.image_url must be an http(s) URL or a data: URL", param="input")
            content.append({"type": "input_image", "image_url": p.image_url, "detail": p.detail or "auto"})
        else:
            content.append({"type": "input_text", "text": (p.refusal if p.type == "refusal" else p.text) or ""})
    return {"id": m.id or new_id("msg"), "type": "message", "role": m.role, "status": "completed", "content": content}


def _output_text(output: str | list[_Part]) -> str:
    if isinstance(output, str):
        return output
    return "".join(p.text or "" for p in output if p.text)


ItemLookup = Callable[[str], Awaitable[Item | None]]


async def normalize(raw: str | list[dict[str, Any]], lookup: ItemLookup) -> list[Item]:
    """The request's ``input`` as normalised items with ids; ``item_reference`` resolved via ``lookup``."""
    if isinstance(raw, str):
        return [_message(_MessageItem(role="user", content=raw))]
    out: list[Item] = []
    for i, item in enumerate(raw):
        kind = item.get("type", "message" if "role" in item else None)
        try:
            if kind == "message":
                out.append(_message(_MessageItem.model_validate(item)))
            elif kind == "function_call":
                fc = _FunctionCallItem.model_validate(item)
                out.append({"id": fc.id or new_id("fc"), "type": "function_call", "call_id": fc.call_id, "name": fc.name,
                            "arguments": fc.arguments, "status": "completed"})
            elif kind == "function_call_output":
                fo = _FunctionCallOutputItem.model_validate(item)
                out.append({"id": fo.id or new_id("fco"), "type": "function_call_output", "call_id": fo.call_id,
                            "output": _output_text(fo.output), "status": "completed"})
            elif kind == "reasoning":
                r = _ReasoningItem.model_validate(item)
                out.append({"id": r.id or new_id("rs"), "type": "reasoning",
                            "summary": [{"type": "summary_text", "text": p.text or ""} for p in r.summary],
                            "content": [{"type": "reasoning_text", "text": p.text or ""} for p in r.content or []]})
            elif kind == "item_reference" or (kind is None and set(item) == {"id"}):
                ref = _ItemReference.model_validate(item)
                found = await lookup(ref.id)
                if found is None:
                    raise APIError("not_found", f"input[{i}]: no stored item with id {ref.id!r}", param=f"input[{i}].id",
                                   code="item_not_found")
                out.append(found)
            else:
                raise invalid(f"input[{i}]: unsupported item type {kind!r} (supported: message, function_call, "
                              "function_call_output, reasoning, item_reference)", param=f"input[{i}].type")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first.get("loc", ()))
            param = f"input[{i}]" + (f".{where}" if where else "")
            raise invalid(f"{param}: {first.get('msg', 'invalid value')}", param=param) from None
    return out


def _parts(content: list[dict[str, Any]], where: str) -> str | list[ContentPart]:
    parts: list[ContentPart] = []
    for j, p in enumerate(content):
        if p.get("type") == "input_image":
            parts.append(ContentPart(type="image", image_url=p.get("image_url"), where=f"{where}.content[{j}]"))
        else:
            parts.append(ContentPart(type="text", text=p.get("text") or p.get("refusal") or ""))
    if all(p.type == "text" for p in parts):
        return "".join(p.text or "" for p in parts)
    return parts


def to_messages(instructions: str | None, items: list[Item], first_input: int = 0) -> list[Message]:
    """The chat the model sees: instructions as a system message, then every item in order (``items`` from
    ``first_input`` on are the request's ``input``, which errors name; earlier ones are stored context).

    Consecutive function calls join the assistant turn before them (parallel calls); a reasoning
    item becomes the ``reasoning`` of the assistant turn that follows it.
    """
    messages: list[Message] = [Message(role="system", content=instructions)] if instructions else []
    names: dict[str, str] = {}
    reasoning: str | None = None
    for k, item in enumerate(items):
        kind = item["type"]
        if kind == "message":
            role: Literal["system", "user", "assistant"] = "system" if item["role"] in ("system", "developer") else item["role"]
            where = f"input[{k - first_input}]" if k >= first_input else f"stored item {item.get('id')}"
            msg = Message(role=role, content=_parts(item["content"], where))
            if role == "assistant":
                msg.reasoning, reasoning = reasoning, None
            messages.append(msg)
        elif kind == "function_call":
            names[item["call_id"]] = item["name"]
            call = ToolCall(id=item["call_id"], name=item["name"], arguments=item["arguments"] or "{}")
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant" and reasoning is None:
                last.tool_calls = [*(last.tool_calls or []), call]
            else:
                messages.append(Message(role="assistant", content=None, tool_calls=[call], reasoning=reasoning))
                reasoning = None
        elif kind == "function_call_output":
            output = item["output"] if isinstance(item["output"], str) else json.dumps(item["output"])
            messages.append(Message(role="tool", tool_call_id=item["call_id"], name=names.get(item["call_id"]), content=output))
        elif kind == "reasoning":
            texts = [p.get("text", "") for p in (item.get("content") or item.get("summary") or [])]
            reasoning = "".join(texts) or None
    return messages
