"""``POST /v1/completions``: legacy text completions, plain and streamed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from pydantic import Field

from localai.engine import Engine
from localai.errors import invalid
from localai.events import Event, Finish, TextDelta
from localai.server.api import sse
from localai.server.api.deps import EngineDep
from localai.server.api.errors import error_body, to_api_error
from localai.server.api.openai.common import SamplingFields, add_usage, merge, new_id, now, usage_dict
from localai.server.api.openai.logprobs import legacy_logprobs
from localai.types import GenerateRequest, Usage

router = APIRouter()


class CompletionBody(SamplingFields):
    prompt: str | list[int] | list[str | list[int]] = ""
    max_tokens: int | None = Field(default=16, ge=0)
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=20)
    suffix: str | None = None
    best_of: int | None = None

    def prompts(self) -> list[str | list[int]]:
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if not p:
            return [""]
        items = [list(p)] if all(isinstance(x, int) for x in p) else list(p)
        for i, item in enumerate(items):
            if isinstance(item, list) and any(t < 0 for t in item):  # type: ignore[operator]
                raise invalid(f"prompt[{i}] has a negative token id", param="prompt")
        return items  # type: ignore[return-value]


def requests_for(body: CompletionBody) -> list[GenerateRequest]:
    if body.suffix:
        raise invalid("suffix (fill-in-the-middle) is not supported", param="suffix")
    out = []
    for prompt in body.prompts():
        for j in range(body.n):
            out.append(GenerateRequest(
                model=body.model or "", prompt=prompt, sampling=body.sampling(j),
                max_tokens=body.max_tokens if body.max_tokens else None, stop=body.stop_list(),
                logprobs=body.logprobs, echo=body.echo, incremental=bool(body.stream), json_limits=body.json_limits,
            ))
    return out


async def echo_text(engine: Engine, model: str, prompt: str | list[int]) -> str:
    if isinstance(prompt, str):
        return prompt
    return (await engine.detokenize(model, prompt))[1]


@router.post("/completions")
async def completions(body: CompletionBody, engine: EngineDep) -> Any:
    reqs = requests_for(body)
    cid, created = new_id("cmpl"), now()
    # Every choice starts before the 200 goes out, so bad requests still get their status code.
    gens = await engine.open_all(reqs, "completion")
    model = gens[0].entry.name
    if body.stream:
        return sse.response(stream(engine, body, reqs, [g.events for g in gens], cid, created, model))
    results = await asyncio.gather(*(g.collect() for g in gens))
    choices = []
    total = Usage()
    for i, (r, res) in enumerate(zip(reqs, results)):
        prefix = await echo_text(engine, model, r.prompt) if body.echo else ""  # type: ignore[arg-type]
        choices.append({
            "index": i,
            "text": prefix + res.text,
            "logprobs": legacy_logprobs(res.logprobs, len(prefix)) if body.logprobs is not None else None,
            "finish_reason": res.finish.reason if res.finish.reason in ("stop", "length") else "stop",
        })
        add_usage(total, res.finish.usage, count_prompt=(i % body.n == 0))
    return {"id": cid, "object": "text_completion", "created": created, "model": model, "choices": choices,
            "usage": usage_dict(total)}


async def stream(engine: Engine, body: CompletionBody, reqs: list[GenerateRequest], streams: list[AsyncIterator[Event]],
                 cid: str, created: int, model: str) -> AsyncIterator[Any]:
    def chunk(index: int, text: str, finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
        return {"id": cid, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}]}

    total = Usage()
    offsets = [0] * len(reqs)
    try:
        if body.echo:
            for i, r in enumerate(reqs):
                text = await echo_text(engine, model, r.prompt)  # type: ignore[arg-type]
                offsets[i] = len(text)
                yield sse.event(chunk(i, text))
        async for i, ev in merge(streams):
            if isinstance(ev, TextDelta):
                lp = legacy_logprobs(ev.logprobs or [], offsets[i]) if body.logprobs is not None else None
                offsets[i] += len(ev.text)
                yield sse.event(chunk(i, ev.text, logprobs=lp))
            elif isinstance(ev, Finish):
                add_usage(total, ev.usage, count_prompt=(i % body.n == 0))
                yield sse.event(chunk(i, "", ev.reason if ev.reason in ("stop", "length") else "stop"))
        if body.stream_options and body.stream_options.include_usage:
            yield sse.event({"id": cid, "object": "text_completion", "created": created, "model": model, "choices": [],
                             "usage": usage_dict(total)})
    except Exception as exc:  # noqa: BLE001 - reported in-stream, the status line is already sent
        yield sse.event(error_body("openai", to_api_error(exc)))
    yield sse.event("[DONE]")
