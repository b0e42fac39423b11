"""JSON schemas for constrained decoding: a forced tool call, or a response format.

A call is ``{"name": <const tool name>, "arguments": <that tool's parameters>}``; several allowed
tools become a ``oneOf``; with parallel calls a non-empty array of calls is allowed as well. Each tool's ``$defs`` are hoisted
to the root under a per-tool prefix so local ``$ref``s keep resolving (llama.cpp's converter
resolves refs against the root document).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

from localai.errors import invalid
from localai.types import ResponseFormat, ToolChoice, ToolSpec


def check_schema(schema: Any, param: str) -> None:
    """A clear 400 for a schema that is not a JSON schema at all."""
    if not isinstance(schema, dict):
        raise invalid(f"{param} must be a JSON schema object", param=param)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise invalid(f"{param} is not a valid JSON schema: {exc.message}", param=param) from exc


def _hoist_defs(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    local: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        for name, sub in (schema.pop(key, None) or {}).items():
            local[f"#/{key}/{name}"] = f"{prefix}{name}"
            defs[f"{prefix}{name}"] = sub

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: rewrite(v) for k, v in node.items()}
            ref = out.get("$ref")
            if isinstance(ref, str) and ref in local:
                out["$ref"] = f"#/$defs/{local[ref]}"
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    for name in list(defs):
        if name.startswith(prefix):
            defs[name] = rewrite(defs[name])
    return rewrite(schema)


def allowed_tools(tools: list[ToolSpec], choice: ToolChoice) -> list[ToolSpec]:
    if choice.mode != "named":
        return tools
    chosen = [t for t in tools if t.name == choice.name]
    if not chosen:
        raise invalid(f"tool_choice names {choice.name!r}, which is not among the tools "
                      f"({', '.join(t.name for t in tools)})", param="tool_choice")
    return chosen


def tool_call_schema(tools: list[ToolSpec], parallel: bool) -> dict[str, Any]:
    """The schema every allowed output satisfies: one call (or a non-empty list) to one of ``tools``."""
    defs: dict[str, Any] = {}
    alternatives = []
    for i, tool in enumerate(tools):
        params = _hoist_defs(tool.parameters or {"type": "object"}, f"tool{i}-", defs)
        alternatives.append({
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": params},
            "required": ["name", "arguments"],
        })
    call = alternatives[0] if len(alternatives) == 1 else {"oneOf": alternatives}
    # Parallel calls allow a list but don't force one: a small model forced into a list rarely closes it.
    schema: dict[str, Any] = {"anyOf": [call, {"type": "array", "items": call, "minItems": 1}]} if parallel else call
    if defs:
        schema = {**schema, "$defs": defs}
    return schema


def response_format_schema(fmt: ResponseFormat | None) -> dict[str, Any] | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object" or not fmt.schema_:
        return {"type": "object"}
    check_schema(fmt.schema_, "response_format.json_schema.schema")
    return fmt.schema_


def either(calls: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """Tool calls or a structured answer (``auto`` with a response format), ``$defs`` kept at the root."""
    calls = dict(calls)
    defs = calls.pop("$defs", {})
    answer = _hoist_defs(answer, "format-", defs)
    schema: dict[str, Any] = {"anyOf": [calls, answer]}
    if defs:
        schema["$defs"] = defs
    return schema
