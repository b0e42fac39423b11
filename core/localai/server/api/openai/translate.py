"""Translating OpenAI chat inputs (messages, tools, functions, response_format) into the internal types.

Validation of message structure happens here, not in pydantic unions, so a bad request gets one
clear message naming the offending ``messages[i]...`` path.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from localai.errors import invalid
from localai.tools.parsers import new_call_id
from localai.types import (
    ContentPart,
    Message,
    ResponseFormat,
    ToolCall,
    ToolChoice,
    ToolSpec,
)

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool",
         "function": "tool"}


class ChatMessageIn(BaseModel):
    """One OpenAI message, loosely typed; :func:`to_messages` checks what each role allows."""

    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    function_call: dict[str, Any] | None = None
    reasoning_content: str | None = None


def _parts(content: str | list[dict[str, Any]] | None, where: str, images: bool) -> str | list[ContentPart] | None:
    if content is None or isinstance(content, str):
        return content
    parts: list[ContentPart] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text" or kind == "refusal":
            text = part.get(kind)
            if not isinstance(text, str):
                raise invalid(f"{where}.content[{j}].{kind} must be a string", param=f"{where}.content[{j}]")
            parts.append(ContentPart(type="text", text=text))
        elif kind == "image_url" and images:
            spec = part.get("image_url")
            url = spec.get("url") if isinstance(spec, dict) else spec
            if not isinstance(url, str) or not url.startswith(("data:", "http://", "https://")):
                raise invalid(f"{where}.content[{j}].image_url.url must be a data: URL or an http(s) URL",
                              param=f"{where}.content[{j}].image_url")
            parts.append(ContentPart(type="image", image_url=url, where=f"{where}.content[{j}].image_url"))
        else:
            raise invalid(f"{where}.content[{j}]: content part type {kind!r} is not supported here",
                          param=f"{where}.content[{j}].type")
    if all(p.type == "text" for p in parts):
        return "".join(p.text or "" for p in parts)
    return parts


def _arguments(value: Any, where: str) -> str:
    if value is None:
        return "{}"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    raise invalid(f"{where}.arguments must be a JSON string", param=where)


def _tool_calls(m: ChatMessageIn, where: str) -> list[ToolCall] | None:
    calls: list[ToolCall] = []
    for j, call in enumerate(m.tool_calls or []):
        fn = call.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise invalid(f"{where}.tool_calls[{j}].function.name is required", param=f"{where}.tool_calls[{j}]")
        cid = call["id"] if isinstance(call.get("id"), str) else new_call_id()
        calls.append(ToolCall(id=cid, name=fn["name"], arguments=_arguments(fn.get("arguments"), f"{where}.tool_calls[{j}].function")))
    if m.function_call:
        name = m.function_call.get("name")
        if not isinstance(name, str):
            raise invalid(f"{where}.function_call.name is required", param=f"{where}.function_call")
        calls.append(ToolCall(id=new_call_id(), name=name,
                              arguments=_arguments(m.function_call.get("arguments"), f"{where}.function_call")))
    return calls or None


def to_messages(raw: list[ChatMessageIn]) -> list[Message]:
    """Map roles (developer -> system, function -> tool) and attach tool names to tool results."""
    if not raw:
        raise invalid("messages must contain at least one message", param="messages")
    out: list[Message] = []
    names: dict[str, str] = {}  # tool call id -> function name, for tool results that omit the name
    last_call_by_name: dict[str, str] = {}
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        role = ROLES.get(m.role)
        if role is None:
            raise invalid(f"{where}.role: unknown role {m.role!r}; expected one of {', '.join(ROLES)}", param=f"{where}.role")
        content = _parts(m.content, where, images=(role == "user"))
        if role == "assistant":
            calls = _tool_calls(m, where)
            for c in calls or []:
                names[c.id] = c.name
                last_call_by_name[c.name] = c.id
            out.append(Message(role="assistant", content=content, name=m.name, tool_calls=calls, reasoning=m.reasoning_content))
        elif m.role == "tool":
            if not m.tool_call_id:
                raise invalid(f"{where}.tool_call_id is required for role tool", param=f"{where}.tool_call_id")
            out.append(Message(role="tool", content=content, tool_call_id=m.tool_call_id, name=m.name or names.get(m.tool_call_id)))
        elif m.role == "function":
            if not m.name:
                raise invalid(f"{where}.name is required for role function", param=f"{where}.name")
            out.append(Message(role="tool", content=content, name=m.name, tool_call_id=last_call_by_name.get(m.name)))
        else:
            out.append(Message(role=role, content=content, name=m.name))  # type: ignore[arg-type]
    return out


def _spec(fn: Any, where: str) -> ToolSpec:
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise invalid(f"{where}.name is required", param=where)
    params = fn.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise invalid(f"{where}.parameters must be a JSON schema object", param=f"{where}.parameters")
    spec = ToolSpec(name=fn["name"], description=fn.get("description"), strict=bool(fn.get("strict")))
    if params:
        spec.parameters = params
    return spec


def to_tools(tools: list[dict[str, Any]] | None, functions: list[dict[str, Any]] | None) -> list[ToolSpec] | None:
    if tools and functions:
        raise invalid("send either tools or the legacy functions, not both", param="functions")
    if functions:
        return [_spec(fn, f"functions[{i}]") for i, fn in enumerate(functions)]
    specs = []
    for i, tool in enumerate(tools or []):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else tool
            raise invalid(f"tools[{i}].type {kind!r} is not supported; only function tools are", param=f"tools[{i}].type")
        specs.append(_spec(tool.get("function"), f"tools[{i}].function"))
    return specs or None


def to_tool_choice(choice: Any, tools: list[ToolSpec] | None, parallel: bool | None, param: str) -> ToolChoice | None:
    """``none``/``auto``/``required`` or a named function, for ``tool_choice`` and legacy ``function_call``."""
    if choice is None:
        return ToolChoice(parallel=parallel is not False) if tools else None
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required") or (choice == "required" and param == "function_call"):
            raise invalid(f"{param}: unknown value {choice!r}", param=param)
        if choice == "required" and not tools:
            raise invalid(f"{param} is 'required' but no tools were given", param=param)
        return ToolChoice(mode=choice, parallel=parallel is not False)  # type: ignore[arg-type]
    if isinstance(choice, dict):
        fn = choice.get("function") if param == "tool_choice" else choice
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str):
            raise invalid(f"{param} must be 'none', 'auto'{', required' if param == 'tool_choice' else ''} or name a function",
                          param=param)
        if not tools or name not in {t.name for t in tools}:
            raise invalid(f"{param} names function {name!r}, which is not among the given tools", param=param)
        return ToolChoice(mode="named", name=name, parallel=parallel is not False)
    raise invalid(f"{param} has an invalid type", param=param)


def to_response_format(fmt: dict[str, Any] | None) -> ResponseFormat | None:
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat(type="json_object")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise invalid("response_format.json_schema must be an object with a schema", param="response_format.json_schema")
        return ResponseFormat(type="json_schema", schema=spec.get("schema") or {"type": "object"}, name=spec.get("name"),
                              strict=bool(spec.get("strict")))
    raise invalid(f"response_format.type {kind!r} is not supported; use text, json_object or json_schema",
                  param="response_format.type")
