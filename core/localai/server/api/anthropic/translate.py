"""A Messages request body -> the one internal :class:`localai.types.GenerateRequest`."""

from __future__ import annotations

from localai.errors import invalid
from localai.server.api.anthropic.blocks import to_messages
from localai.server.api.anthropic.models import (
    CountTokensBody,
    MessagesBody,
    ToolChoiceAny,
    ToolChoiceNone,
    ToolChoiceTool,
)
from localai.types import GenerateRequest, Message, ResponseFormat, SamplingParams, ToolChoice, ToolSpec


def system_message(body: CountTokensBody) -> Message | None:
    if body.system is None:
        return None
    text = body.system if isinstance(body.system, str) else "\n\n".join(b.text for b in body.system)
    return Message(role="system", content=text) if text else None


def tool_specs(body: CountTokensBody) -> list[ToolSpec] | None:
    if not body.tools:
        return None
    specs = []
    for i, tool in enumerate(body.tools):
        if tool.type not in (None, "custom"):
            raise invalid(f"tools.{i}: server tool {tool.type!r} is not supported; only client tools with an input_schema are",
                          param=f"tools.{i}.type")
        if tool.input_schema is None:
            raise invalid(f"tools.{i}.input_schema: Field required", param=f"tools.{i}.input_schema")
        specs.append(ToolSpec(name=tool.name, description=tool.description, parameters=tool.input_schema))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise invalid("tools: tool names must be unique", param="tools")
    return specs


def tool_choice(body: CountTokensBody, specs: list[ToolSpec] | None) -> ToolChoice | None:
    choice = body.tool_choice
    if choice is None:
        return None
    if isinstance(choice, ToolChoiceNone):
        return ToolChoice(mode="none")
    parallel = not choice.disable_parallel_tool_use
    if isinstance(choice, (ToolChoiceAny, ToolChoiceTool)) and not specs:
        raise invalid(f"tool_choice.type {choice.type!r} requires tools", param="tool_choice")
    if isinstance(choice, ToolChoiceTool):
        if choice.name not in {s.name for s in specs or []}:
            raise invalid(f"tool_choice.name: no tool named {choice.name!r} in tools", param="tool_choice.name")
        return ToolChoice(mode="named", name=choice.name, parallel=parallel)
    return ToolChoice(mode="required" if isinstance(choice, ToolChoiceAny) else "auto", parallel=parallel)


def messages(body: CountTokensBody) -> list[Message]:
    out: list[Message] = []
    system = system_message(body)
    if system is not None:
        out.append(system)
    for i, m in enumerate(body.messages):
        out.extend(to_messages(m.role, m.content, f"messages.{i}"))
    return out


def to_request(body: CountTokensBody) -> GenerateRequest:
    """Everything both endpoints share: messages, tools, thinking and output format."""
    specs = tool_specs(body)
    fmt = None
    if body.output_config is not None and body.output_config.format is not None:
        fmt = ResponseFormat(type="json_schema", schema=body.output_config.format.schema_)
    reasoning = None if body.thinking is None else body.thinking.type != "disabled"
    req = GenerateRequest(model=body.model, messages=messages(body), tools=specs, tool_choice=tool_choice(body, specs),
                          response_format=fmt, reasoning=reasoning)
    if isinstance(body, MessagesBody):
        req.sampling = SamplingParams(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k)
        req.max_tokens = body.max_tokens
        req.stop = [s for s in body.stop_sequences or [] if s]
        req.json_limits = body.json_limits
        req.incremental = bool(body.stream)
    return req
