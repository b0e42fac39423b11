"""What the engine streams to protocol adapters: text, reasoning, tool calls, then one finish."""

from __future__ import annotations

from dataclasses import dataclass, field

from localai.types import TokenLogprob, Usage


@dataclass
class TextDelta:
    text: str
    logprobs: list[TokenLogprob] | None = None


@dataclass
class ReasoningDelta:
    text: str


@dataclass
class ToolCallStart:
    """A tool call begins; ``name`` is known before any argument text streams."""

    index: int
    id: str
    name: str


@dataclass
class ToolCallDelta:
    index: int
    arguments: str


@dataclass
class ToolCallEnd:
    index: int
    arguments: str  # the complete, valid JSON string


@dataclass
class Finish:
    reason: str  # stop | length | tool_calls | cancelled
    usage: Usage = field(default_factory=Usage)
    stop_sequence: str | None = None


Event = TextDelta | ReasoningDelta | ToolCallStart | ToolCallDelta | ToolCallEnd | Finish
