"""``POST /v1/chat/completions``: chats, plain and streamed, with tools, legacy functions and n choices."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from pydantic import Field

from localai.engine import Result
from localai.errors import invalid
from localai.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from localai.server.api import sse
from localai.server.api.deps import EngineDep
from localai.server.api.errors import error_body, to_api_error
from localai.server.api.openai import translate
from localai.server.api.openai.common import SamplingFields, add_usage, merge, new_id, now, usage_dict
from localai.server.api.openai.logprobs import chat_logprobs
from localai.types import GenerateRequest, Usage

router = APIRouter()


class ChatBody(SamplingFields):
    messages: list[translate.ChatMessageIn]
    max_tokens: int | None = Field(default=None, ge=0)
    max_completion_tokens: int | None = Field(default=None, ge=0)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    @property
    def legacy(self) -> bool:
        """Legacy ``functions`` answer with ``function_call`` instead of ``tool_calls``."""
        return bool(self.functions)


def requests_for(body: ChatBody) -> list[GenerateRequest]:
    """One internal request per choice (choice ``i`` samples with ``seed + i``)."""
    if body.top_logprobs is not None and not body.logprobs:
        raise invalid("top_logprobs requires logprobs to be true", param="top_logprobs")
    messages = translate.to_messages(body.messages)
    tools = translate.to_tools(body.tools, body.functions)
    if body.legacy:
        choice = translate.to_tool_choice(body.function_call, tools, False, "function_call")
    else:
        choice = translate.to_tool_choice(body.tool_choice, tools, body.parallel_tool_calls, "tool_choice")
    fmt = translate.to_response_format(body.response_format)
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    return [
        GenerateRequest(
            model=body.model or "", messages=messages, tools=tools, tool_choice=choice, response_format=fmt,
            sampling=body.sampling(i), max_tokens=max_tokens or None, stop=body.stop_list(),
            logprobs=(body.top_logprobs or 0) if body.logprobs else None,
            chat_template_kwargs=body.chat_template_kwargs, incremental=bool(body.stream), json_limits=body.json_limits,
        )
        for i in range(body.n)
    ]


def finish_reason(reason: str, legacy: bool) -> str:
    if reason == "tool_calls":
        return "function_call" if legacy else "tool_calls"
    return reason if reason in ("stop", "length") else "stop"


def message(res: Result, legacy: bool) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": res.text if res.text or not res.tool_calls else None}
    if res.reasoning:
        msg["reasoning_content"] = res.reasoning
    if res.tool_calls and legacy:
        first = res.tool_calls[0]
        msg["function_call"] = {"name": first.name, "arguments": first.arguments}
    elif res.tool_calls:
        msg["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                             for c in res.tool_calls]
    return msg


@router.post("/chat/completions")
async def chat_completions(body: ChatBody, engine: EngineDep) -> Any:
    cid, created = new_id("chatcmpl"), now()
    # Every choice starts before the 200 goes out, so bad requests still get their status code.
    gens = await engine.open_all(requests_for(body), "chat")
    model = gens[0].entry.name
    if body.stream:
        return sse.response(stream(body, [g.events for g in gens], cid, created, model))
    results = await asyncio.gather(*(g.collect() for g in gens))
    total = Usage()
    choices = []
    for i, res in enumerate(results):
        choices.append({
            "index": i,
            "message": message(res, body.legacy),
            "logprobs": chat_logprobs(res.logprobs) if body.logprobs else None,
            "finish_reason": finish_reason(res.finish.reason, body.legacy),
        })
        add_usage(total, res.finish.usage, count_prompt=(i == 0))
    return {"id": cid, "object": "chat.completion", "created": created, "model": model, "choices": choices,
            "usage": usage_dict(total), "system_fingerprint": None}


class ChunkWriter:
    """Builds ``chat.completion.chunk`` objects; remembers per-choice tool-call argument progress."""

    def __init__(self, body: ChatBody, cid: str, created: int, model: str) -> None:
        self.legacy = body.legacy
        self.with_usage = bool(body.stream_options and body.stream_options.include_usage)
        self.logprobs = bool(body.logprobs)
        self.head = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                     "system_fingerprint": None}
        self.sent_args: dict[tuple[int, int], str] = {}

    def chunk(self, index: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
        out = {**self.head, "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}
        if self.with_usage:
            out["usage"] = None
        return out

    def usage(self, total: Usage) -> dict[str, Any]:
        return {**self.head, "choices": [], "usage": usage_dict(total)}

    def _call_delta(self, ev_index: int, fields: dict[str, Any]) -> dict[str, Any]:
        if self.legacy:
            return {"function_call": fields.get("function", {})}
        return {"tool_calls": [{"index": ev_index, **fields}]}

    def events(self, i: int, ev: Event) -> list[dict[str, Any]]:
        """The chunks one engine event of choice ``i`` becomes (possibly none)."""
        if isinstance(ev, TextDelta):
            if not ev.text and not ev.logprobs:
                return []
            lp = chat_logprobs(ev.logprobs or []) if self.logprobs else None
            return [self.chunk(i, {"content": ev.text}, logprobs=lp)]
        if isinstance(ev, ReasoningDelta):
            return [self.chunk(i, {"reasoning_content": ev.text})] if ev.text else []
        if self.legacy and isinstance(ev, (ToolCallStart, ToolCallDelta, ToolCallEnd)) and ev.index > 0:
            return []  # legacy function_call carries exactly one call
        if isinstance(ev, ToolCallStart):
            self.sent_args[(i, ev.index)] = ""
            fields = {"id": ev.id, "type": "function", "function": {"name": ev.name, "arguments": ""}}
            if self.legacy:
                fields = {"function": {"name": ev.name, "arguments": ""}}
            return [self.chunk(i, self._call_delta(ev.index, fields))]
        if isinstance(ev, ToolCallDelta):
            if not ev.arguments:
                return []
            self.sent_args[(i, ev.index)] = self.sent_args.get((i, ev.index), "") + ev.arguments
            return [self.chunk(i, self._call_delta(ev.index, {"function": {"arguments": ev.arguments}}))]
        if isinstance(ev, ToolCallEnd):
            sent = self.sent_args.get((i, ev.index), "")
            rest = ev.arguments[len(sent):] if ev.arguments.startswith(sent) else ""
            if not rest:
                return []
            self.sent_args[(i, ev.index)] = ev.arguments
            return [self.chunk(i, self._call_delta(ev.index, {"function": {"arguments": rest}}))]
        if isinstance(ev, Finish):
            return [self.chunk(i, {}, finish_reason(ev.reason, self.legacy))]
        return []


async def stream(body: ChatBody, streams: list[AsyncIterator[Event]], cid: str, created: int, model: str) -> AsyncIterator[Any]:
    """Role first, then deltas, finish_reason last per choice, the usage chunk if asked, then ``[DONE]``."""
    writer = ChunkWriter(body, cid, created, model)
    total = Usage()
    try:
        for i in range(len(streams)):
            yield sse.event(writer.chunk(i, {"role": "assistant", "content": ""}))
        async for i, ev in merge(streams):
            if isinstance(ev, Finish):
                add_usage(total, ev.usage, count_prompt=(i == 0))
            for chunk in writer.events(i, ev):
                yield sse.event(chunk)
        if writer.with_usage:
            yield sse.event(writer.usage(total))
    except Exception as exc:  # noqa: BLE001 - reported in-stream, the status line is already sent
        yield sse.event(error_body("openai", to_api_error(exc)))
    finally:
        for s in streams:
            aclose = getattr(s, "aclose", None)
            if aclose is not None:
                await aclose()
    yield sse.event("[DONE]")
