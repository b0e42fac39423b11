"""The response object: every field the spec requires, always present (``null`` where empty)."""

from __future__ import annotations

import time
from typing import Any

from localai.config import ModelConfig
from localai.errors import APIError
from localai.server.api.responses.models import (
    AllowedToolsParam,
    CreateBody,
    SpecificFunctionParam,
)
from localai.types import Usage

# Error kinds -> the codes the spec's (and the OpenAI SDK's) response.error.code allows.
ERROR_CODES = {"rate_limit": "rate_limit_exceeded", "overloaded": "rate_limit_exceeded", "invalid_request": "invalid_prompt"}


def _tool_choice(body: CreateBody) -> Any:
    choice = body.tool_choice
    if choice is None:
        return "auto"
    if isinstance(choice, str):
        return choice
    if isinstance(choice, SpecificFunctionParam):
        return {"type": "function", "name": choice.name}
    assert isinstance(choice, AllowedToolsParam)
    return {"type": "allowed_tools", "mode": choice.mode, "tools": [{"type": "function", "name": t.name} for t in choice.tools]}


def _text(body: CreateBody) -> dict[str, Any]:
    if body.text is None:
        return {"format": {"type": "text"}}
    fmt = body.text.format
    out: dict[str, Any] = {"format": fmt.model_dump(by_alias=True)}
    if fmt.type == "json_schema":
        out["format"].setdefault("description", None)
        out["format"]["strict"] = bool(out["format"].get("strict"))
    if body.text.verbosity:
        out["verbosity"] = body.text.verbosity
    return out


def new(body: CreateBody, *, rid: str, model: str, config: ModelConfig, status: str) -> dict[str, Any]:
    """A fresh response object for ``body``; sampling fields show the values actually used."""
    p = config.parameters

    def used(value: float | None, default: float | None, fallback: float) -> float:
        return float(value if value is not None else default if default is not None else fallback)

    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "completed_at": None,
        "status": status,
        "incomplete_details": None,
        "model": model,
        "previous_response_id": body.previous_response_id,
        "instructions": body.instructions,
        "output": [],
        "error": None,
        "tools": [{"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters,
                   "strict": t.strict} for t in body.tools or []],
        "tool_choice": _tool_choice(body),
        "truncation": body.truncation or "disabled",
        "parallel_tool_calls": body.parallel_tool_calls if body.parallel_tool_calls is not None else True,
        "text": _text(body),
        "top_p": used(body.top_p, p.top_p, 1.0),
        "presence_penalty": used(body.presence_penalty, p.presence_penalty, 0.0),
        "frequency_penalty": used(body.frequency_penalty, p.frequency_penalty, 0.0),
        "top_logprobs": body.top_logprobs or 0,
        "temperature": used(body.temperature, p.temperature, 1.0),
        "reasoning": body.reasoning.model_dump(include={"effort", "summary"}) if body.reasoning else None,
        "usage": None,
        "max_output_tokens": body.max_output_tokens,
        "max_tool_calls": body.max_tool_calls,
        "store": body.stored,
        "background": bool(body.background),
        "service_tier": body.service_tier or "default",
        "metadata": body.metadata or {},
        "safety_identifier": body.safety_identifier,
        "prompt_cache_key": body.prompt_cache_key,
        "user": body.user,
    }


def usage(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    }


def error(err: APIError) -> dict[str, Any]:
    return {"code": ERROR_CODES.get(err.kind, "server_error"), "message": err.message, "param": err.param,
            "type": err.code or err.kind}
