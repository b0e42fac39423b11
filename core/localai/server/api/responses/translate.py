"""Turning a Responses request into the engine's :class:`GenerateRequest`."""

from __future__ import annotations

from localai.errors import invalid
from localai.server.api.responses.models import (
    AllowedToolsParam,
    CreateBody,
    SpecificFunctionParam,
    TextFormatJsonSchema,
)
from localai.types import GenerateRequest, Message, ResponseFormat, SamplingParams, ToolChoice, ToolSpec


def tools(body: CreateBody) -> list[ToolSpec] | None:
    if not body.tools:
        return None
    seen: set[str] = set()
    out = []
    for i, t in enumerate(body.tools):
        if t.name in seen:
            raise invalid(f"tools[{i}]: duplicate function name {t.name!r}", param=f"tools[{i}].name")
        seen.add(t.name)
        spec = ToolSpec(name=t.name, description=t.description, strict=bool(t.strict))
        if t.parameters:
            spec.parameters = t.parameters
        out.append(spec)
    return out


def tool_choice(body: CreateBody, specs: list[ToolSpec] | None) -> tuple[ToolChoice | None, list[ToolSpec] | None]:
    """The engine's tool choice, and the tools left once ``allowed_tools`` has narrowed them."""
    choice = body.tool_choice
    parallel = body.parallel_tool_calls if body.parallel_tool_calls is not None else True
    names = {t.name for t in specs or []}
    if choice is None:
        return (ToolChoice(mode="auto", parallel=parallel) if specs else None), specs
    if isinstance(choice, str):
        if choice == "required" and not specs:
            raise invalid("tool_choice 'required' needs at least one tool in tools", param="tool_choice")
        return ToolChoice(mode=choice, parallel=parallel), specs
    if isinstance(choice, SpecificFunctionParam):
        if choice.name not in names:
            raise invalid(f"tool_choice names function {choice.name!r}, which is not in tools", param="tool_choice")
        return ToolChoice(mode="named", name=choice.name, parallel=parallel), specs
    assert isinstance(choice, AllowedToolsParam)
    allowed = [t.name for t in choice.tools]
    unknown = [n for n in allowed if n not in names]
    if unknown:
        raise invalid(f"tool_choice.tools names {unknown[0]!r}, which is not in tools", param="tool_choice.tools")
    narrowed = [t for t in specs or [] if t.name in allowed]
    return ToolChoice(mode=choice.mode, parallel=parallel), narrowed


def response_format(body: CreateBody) -> ResponseFormat | None:
    fmt = body.text.format if body.text else None
    if fmt is None or fmt.type == "text":
        return None
    if isinstance(fmt, TextFormatJsonSchema):
        return ResponseFormat(type="json_schema", schema=fmt.schema_, name=fmt.name, strict=bool(fmt.strict))
    return ResponseFormat(type="json_object")


def reasoning(body: CreateBody) -> bool | None:
    """``reasoning.effort: none`` turns thinking off; any other effort asks for it; no field: model default."""
    if body.reasoning is None or body.reasoning.effort is None:
        return None
    return body.reasoning.effort != "none"


def generate_request(body: CreateBody, model: str, messages: list[Message]) -> GenerateRequest:
    if not any(m.role != "system" for m in messages):
        raise invalid("input must contain at least one item besides instructions", param="input")
    specs = tools(body)
    choice, specs = tool_choice(body, specs)
    return GenerateRequest(
        model=model,
        messages=messages,
        tools=specs,
        tool_choice=choice,
        response_format=response_format(body),
        sampling=SamplingParams(
            temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, min_p=body.min_p,
            repeat_penalty=body.repeat_penalty, presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty, seed=body.seed,
        ),
        max_tokens=body.max_output_tokens,
        logprobs=(body.top_logprobs or 0) if body.include_logprobs() else None,
        reasoning=reasoning(body),
        json_limits=body.json_limits,
        incremental=bool(body.stream or body.background),  # a background response can be followed as a stream
    )
