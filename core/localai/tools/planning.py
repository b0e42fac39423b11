"""Planning a request's tool prompt, decoding constraint and output parser.

Forced calls (``required`` / ``named``) and JSON response formats become a JSON-schema constraint
the backend enforces while decoding; ``auto`` prompts with the model's own template when it
renders tools (else a YAML ``template.function`` or the built-in prompt) and parses the output
with the model family's parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from localai import constraints
from localai.chat.templates import template_renders_tools
from localai.config import ModelConfig
from localai.errors import invalid
from localai.events import Event, TextDelta
from localai.tools import parsers, prompt, registry, schema
from localai.types import Constraint, GenerateRequest, Message, ModelInfo, ToolChoice, ToolSpec


class OutputParser(Protocol):
    """Turns streamed raw model text into events; must never leak tool-call markup into text."""

    def feed(self, text: str) -> list[Event]: ...

    def finish(self) -> list[Event]: ...

    @property
    def called_tools(self) -> bool: ...


class PlainParser:
    """Text passes through unchanged (raw completions)."""

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

    def rendered(self, prompt_text: str) -> None:
        """Tell the parser when the rendered prompt itself opened a thinking block."""
        p = self.parser
        if isinstance(p, parsers.ToolCallParser) and p.reasoning and prompt_text.rstrip().endswith(p.reasoning[0]):
            p.open_reasoning()


def response_format_constraint(request: GenerateRequest) -> Constraint | None:
    fmt = schema.response_format_schema(request.response_format)
    if fmt is None:
        return None
    constraint = Constraint(type="json_schema", json_schema=fmt)
    enforceable(constraint, RESPONSE_FORMAT)
    return constraint


RESPONSE_FORMAT = "response_format.json_schema.schema"


def enforceable(constraint: Constraint, param: str) -> None:
    """A 400 naming the keyword and where it is, when the shared constraint engine cannot enforce ``constraint``."""
    try:
        constraints.check(constraint, param)
    except constraints.ConstraintRefused as exc:
        raise invalid(exc.message, param=exc.path or param, code=exc.code) from exc


def _prompt_messages(messages: list[Message], tools: list[ToolSpec], choice: ToolChoice, template_source: str,
                     config: ModelConfig) -> tuple[list[Message], list[ToolSpec] | None]:
    """Messages with the tools placed where this model will see them, and the tools for the template."""
    messages = prompt.name_tool_results(messages)
    if "tool_calls" not in template_source:
        messages = prompt.flatten_tool_messages(messages)
    if not tools:
        return messages, None
    if config.template.function:
        return prompt.with_tool_prompt(messages, prompt.function_template_prompt(config.template.function, tools, choice)), None
    if template_renders_tools(template_source):
        return messages, tools
    return prompt.with_tool_prompt(messages, prompt.builtin_prompt(tools, choice)), None


def plan(request: GenerateRequest, *, template_source: str, info: ModelInfo, config: ModelConfig,
         parser_registry: registry.ParserRegistry | None = None) -> ToolPlan:
    """How to prompt, constrain and parse ``request``; no tools means text and reasoning only."""
    choice = request.tool_choice or ToolChoice()
    offered = request.tools or []
    for i, t in enumerate(offered):
        schema.check_schema(t.parameters, f"tools[{i}].parameters")
    if choice.mode in ("required", "named") and not offered:
        raise invalid(f"tool_choice {choice.mode!r} needs at least one tool in tools", param="tool_choice")
    tools = [] if choice.mode == "none" else schema.allowed_tools(offered, choice)
    messages, template_tools = _prompt_messages(list(request.messages or []), tools, choice, template_source, config)

    forced = bool(tools) and choice.mode in ("required", "named")
    answer = schema.response_format_schema(request.response_format)
    constraint = request.constraint
    if constraint is not None:
        enforceable(constraint, "constraint")
    # each enforced schema is checked on its own first, so a refusal names the request's own parameter
    if constraint is None and (forced or answer is not None):
        for t in tools:
            enforceable(Constraint(type="json_schema", json_schema=t.parameters), f"tools[{offered.index(t)}].parameters")
        if answer is not None:
            enforceable(Constraint(type="json_schema", json_schema=answer), RESPONSE_FORMAT)
    if constraint is None and forced:
        constraint = Constraint(type="json_schema", json_schema=schema.tool_call_schema(tools, choice.parallel))
        enforceable(constraint, "tools")
    elif constraint is None and answer is not None:
        json_schema = schema.either(schema.tool_call_schema(tools, choice.parallel), answer) if tools else answer
        constraint = Constraint(type="json_schema", json_schema=json_schema)
        enforceable(constraint, RESPONSE_FORMAT)

    parser: parsers.ToolCallParser
    if forced and request.constraint is None:
        parser = parsers.ConstrainedParser()
    elif tools:
        reg = parser_registry or registry.builtin()
        native = template_tools is not None
        name = reg.choose(config.tool_parser, template_source if native else None, info.architecture if native else None)
        parser = reg.create(name)
    else:
        parser = parsers.TextParser()
    parser.configure([t.name for t in tools], None if choice.parallel else 1)
    return ToolPlan(messages=messages, template_tools=template_tools, constraint=constraint, parser=parser)
