"""Pieces the OpenAI endpoints share: sampling fields, ids, usage, and running n choices at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from localai.events import Event
from localai.types import (
    JsonLimits,
    MinP,
    Penalty,
    RepeatPenalty,
    SamplingParams,
    Temperature,
    TopK,
    TopP,
    Usage,
)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class SamplingFields(BaseModel):
    """Fields chat and completions share. Unknown fields are ignored (LLMStack sends extras)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model: str | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    top_k: TopK | None = None
    min_p: MinP | None = None
    repeat_penalty: RepeatPenalty | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    seed: int | None = None
    logit_bias: dict[str, float] | None = None
    ignore_eos: bool | None = None  # vLLM's / llama.cpp server's / LocalAI's extension
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=16)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    json_limits: JsonLimits | None = None  # localai's extension: how JSON output may be written (see the README)

    def sampling(self, choice: int = 0) -> SamplingParams:
        """Sampling for choice ``choice``: with a seed, each choice gets its own (seed + index)."""
        try:
            bias = {int(k): float(v) for k, v in (self.logit_bias or {}).items()}
        except ValueError:
            from localai.errors import invalid

            raise invalid("logit_bias keys must be token ids", param="logit_bias") from None
        return SamplingParams(
            temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p,
            repeat_penalty=self.repeat_penalty, presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=None if self.seed is None else self.seed + choice,
            logit_bias=bias or None, ignore_eos=bool(self.ignore_eos),
        )

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def add_usage(total: Usage, part: Usage, count_prompt: bool) -> None:
    if count_prompt:
        total.prompt_tokens += part.prompt_tokens
        total.cached_tokens += part.cached_tokens
    total.completion_tokens += part.completion_tokens


async def merge(streams: list[AsyncIterator[Event]]) -> AsyncIterator[tuple[int, Event]]:
    """Interleave several event streams as they produce, tagged with their index.

    If the consumer stops early (client gone), every stream is closed, cancelling its generation.
    """
    if len(streams) == 1:
        async for ev in streams[0]:
            yield 0, ev
        return
    queue: asyncio.Queue[tuple[int, Event | BaseException | None]] = asyncio.Queue()

    async def pump(i: int, stream: AsyncIterator[Event]) -> None:
        try:
            async for ev in stream:
                await queue.put((i, ev))
            await queue.put((i, None))
        except BaseException as exc:  # noqa: BLE001 - forwarded to the consumer
            await queue.put((i, exc))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(streams)
        while remaining:
            i, item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield i, item
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
