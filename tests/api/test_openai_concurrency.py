"""Eight concurrent streamed chats all finish, each with the text its prompt gets on its own."""

from __future__ import annotations

import asyncio

import pytest
from openai import AsyncOpenAI, OpenAI

# Distinct first words: whatever order the worker serves them in, each prompt shares only the
# chat template's opening with the one before, so its KV-cache state (and logits) never depend on order.
PROMPTS = ["Name a fruit.", "Give a river.", "List one planet.", "Which bird sings?",
           "Pick a colour.", "Tell me a number.", "Say a city.", "Write a verb."]


def ask(prompt: str) -> dict:
    return {"model": "gemma", "messages": [{"role": "user", "content": prompt}], "max_tokens": 5}


async def streamed(client: AsyncOpenAI, prompt: str) -> tuple[str, str | None]:
    text, finish = [], None
    async for chunk in await client.chat.completions.create(**ask(prompt), stream=True):
        for c in chunk.choices:
            text.append(c.delta.content or "")
            finish = c.finish_reason or finish
    return "".join(text), finish


def test_eight_concurrent_streams(base_url: str) -> None:
    sync = OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, timeout=120, _strict_response_validation=True)
    expected = {p: sync.chat.completions.create(**ask(p)).choices[0].message.content for p in PROMPTS}

    async def main() -> list[tuple[str, str | None]]:
        client = AsyncOpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, timeout=180,
                             _strict_response_validation=True)
        async with client:
            return await asyncio.gather(*(streamed(client, p) for p in PROMPTS))

    assert len(set(expected.values())) > 1  # the prompts answer differently, so a mixed-up stream would show
    results = asyncio.run(main())
    for prompt, (text, finish) in zip(PROMPTS, results):
        assert finish in ("stop", "length"), prompt
        assert text == expected[prompt], prompt


@pytest.mark.parametrize("n", [2])
def test_n_streamed_choices_each_finish(base_url: str, n: int) -> None:
    client = OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, timeout=120, _strict_response_validation=True)
    client.chat.completions.create(**{**ask(PROMPTS[0]), "max_tokens": 1})  # same KV-cache state for both runs
    chunks = list(client.chat.completions.create(**ask(PROMPTS[0]), n=n, stream=True, temperature=0.9, seed=11))
    finishes = {c.choices[0].index: c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason}
    roles = {c.choices[0].index for c in chunks if c.choices[0].delta.role == "assistant"}
    assert set(finishes) == roles == set(range(n))
    texts = {i: "".join(c.choices[0].delta.content or "" for c in chunks if c.choices[0].index == i) for i in range(n)}
    plain = client.chat.completions.create(**ask(PROMPTS[0]), n=n, temperature=0.9, seed=11)
    assert [texts[i] for i in range(n)] == [c.message.content for c in plain.choices]
