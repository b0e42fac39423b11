"""Planning a request's tool prompt, decoding constraint and output parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from localai.chat.templates import template_renders_tools
from localai.config import ModelConfig
from localai.events import Event, TextDelta
from localai.types import Constraint, GenerateRequest, Message, ModelInfo, ToolSpec


class OutputParser(Protocol):
    """Turns streamed raw model text into events; must never leak tool-call markup into text."""

    def feed(self, text: str) -> list[Event]: ...

    def finish(self) -> list[Event]: ...

    @property
    def called_tools(self) -> bool: ...


class PlainParser:
    """Text passes through unchanged."""

    called_tools = False

    def feed(self, text: str) -> list[Event]:
        return [TextDelta(text)] if text else []

    def finish(self) -> list[Event]:
        return []


@dataclass
class ToolPlan:
    messages: list[Message]
    template_tools: list[ToolSpec] | None
    constraint: Constraint | None
    parser: OutputParser
    stop: list[str] = field(default_factory=list)


def response_format_constraint(request: GenerateRequest) -> Constraint | None:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return Constraint(type="json_schema", json_schema={"type": "object"})
    return Constraint(type="json_schema", json_schema=fmt.schema_ or {"type": "object"})


def plan(request: GenerateRequest, *, template_source: str, info: ModelInfo, config: ModelConfig) -> ToolPlan:
    """How to prompt, constrain and parse ``request``; no tools means plain text."""
    messages = list(request.messages or [])
    tools = request.tools if request.tools and (request.tool_choice is None or request.tool_choice.mode != "none") else None
    template_tools = tools if tools and template_renders_tools(template_source) else None
    return ToolPlan(
        messages=messages,
        template_tools=template_tools,
        constraint=request.constraint or response_format_constraint(request),
        parser=PlainParser(),
    )
