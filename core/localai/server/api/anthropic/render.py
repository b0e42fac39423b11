"""Engine results -> Anthropic Message objects: ids, stop reasons, usage, content blocks."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from localai.engine import Result
from localai.events import Finish
from localai.types import Usage

log = logging.getLogger("localai.server.api.anthropic")


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def tool_use_id(engine_id: str) -> str:
    """Anthropic clients expect ``toolu_`` ids; keep the engine's when it already is one."""
    return engine_id if engine_id.startswith("toolu_") else f"toolu_{uuid.uuid4().hex[:24]}"


def stop_reason(finish: Finish, stop_sequences: list[str]) -> tuple[str, str | None]:
    """``(stop_reason, stop_sequence)``; only the caller's own sequences count as ``stop_sequence``
    (the model config's stopwords, like ``<end_of_turn>``, are a natural end of turn)."""
    if finish.reason == "length":
        return "max_tokens", None
    if finish.reason == "tool_calls":
        return "tool_use", None
    if finish.stop_sequence is not None and finish.stop_sequence in stop_sequences:
        return "stop_sequence", finish.stop_sequence
    return "end_turn", None


def usage(u: Usage) -> dict[str, int]:
    """Anthropic's usage: prompt tokens served from the prompt cache are ``cache_read_input_tokens``, so
    ``input_tokens`` + both cache fields = the whole prompt. Nothing is written to a cache on request (no
    ``cache_control`` breakpoints), so creation is always 0."""
    cached = min(u.cached_tokens, u.prompt_tokens)
    return {"input_tokens": u.prompt_tokens - cached, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached, "output_tokens": u.completion_tokens}


def parse_input(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as the object ``input`` must be (never a string)."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        log.warning("tool call arguments are not valid JSON, sending an empty input: %r", arguments[:200])
        return {}
    return value if isinstance(value, dict) else {"value": value}


def message(result: Result, model: str, stop_sequences: list[str]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if result.reasoning:
        content.append({"type": "thinking", "thinking": result.reasoning, "signature": ""})
    if result.text:
        content.append({"type": "text", "text": result.text})
    for call in result.tool_calls:
        content.append({"type": "tool_use", "id": tool_use_id(call.id), "name": call.name, "input": parse_input(call.arguments)})
    reason, sequence = stop_reason(result.finish, stop_sequences)
    return {"id": message_id(), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": reason, "stop_sequence": sequence, "usage": usage(result.finish.usage)}
