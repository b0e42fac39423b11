"""Anthropic Messages request bodies, validated at the edge.

Content blocks are kept as raw dicts here and parsed one by one in :mod:`.blocks`, so a bad block
gets an error naming its position instead of pydantic's union-of-everything message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from localai.types import JsonLimits


class Lenient(BaseModel):
    """Unknown fields are ignored: clients send newer options (cache_control, service_tier, ...)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class MessageParam(Lenient):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class SystemBlock(Lenient):
    type: Literal["text"]
    text: str


class ToolParam(Lenient):
    """A client tool. Server tools (web search, code execution, ...) carry a versioned ``type`` and are refused."""

    type: str | None = None
    name: str = Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolChoiceAuto(Lenient):
    type: Literal["auto"]
    disable_parallel_tool_use: bool = False


class ToolChoiceAny(Lenient):
    type: Literal["any"]
    disable_parallel_tool_use: bool = False


class ToolChoiceTool(Lenient):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: bool = False


class ToolChoiceNone(Lenient):
    type: Literal["none"]


ToolChoiceParam = Annotated[ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")]


class ThinkingParam(Lenient):
    """``enabled`` (with a budget), ``disabled`` or ``adaptive``; the budget is accepted, not enforced."""

    type: str
    budget_tokens: int | None = None


class OutputFormat(Lenient):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(Lenient):
    format: OutputFormat | None = None
    effort: str | None = None


class Metadata(Lenient):
    user_id: str | None = None


class CountTokensBody(Lenient):
    """What ``/v1/messages/count_tokens`` takes: the prompt side of a Messages request."""

    model: str
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[SystemBlock] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    thinking: ThinkingParam | None = None
    output_config: OutputConfig | None = None


class MessagesBody(CountTokensBody):
    max_tokens: int = Field(gt=0)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stream: bool = False
    json_limits: JsonLimits | None = None  # localai's extension: how JSON output may be written
    metadata: Metadata | None = None
