"""``/v1/completions`` with the official SDK against the real model."""

from __future__ import annotations

import pytest
from openai import OpenAI

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, timeout=120, _strict_response_validation=True)


@pytest.fixture(scope="module")
def loose(base_url: str) -> OpenAI:
    """Streamed completion chunks carry ``finish_reason: null`` (as OpenAI sends), which the SDK's
    ``CompletionChoice`` type does not admit, so streams are read without strict validation."""
    return OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, timeout=120)


def test_completion(client: OpenAI) -> None:
    r = client.completions.create(model="gemma", prompt=PROMPT, max_tokens=6)
    assert r.object == "text_completion" and r.model == "gemma"
    assert r.choices[0].text and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 6


def test_prompt_list_token_array_and_echo(client: OpenAI) -> None:
    client.completions.create(model="gemma", prompt=PROMPT, max_tokens=1)  # the same KV-cache state for all runs
    tokens = client.post("/tokenize", body={"model": "gemma", "content": PROMPT, "add_special": True}, cast_to=object)["tokens"]
    ref = client.completions.create(model="gemma", prompt=PROMPT, max_tokens=4).choices[0].text
    r = client.completions.create(model="gemma", prompt=[PROMPT, tokens], max_tokens=4)
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].text == ref
    assert r.choices[1].text == ref  # the same prompt given as tokens
    echoed = client.completions.create(model="gemma", prompt=PROMPT, max_tokens=4, echo=True)
    assert echoed.choices[0].text == PROMPT + ref


def test_streamed_completion_equals_plain(client: OpenAI, loose: OpenAI) -> None:
    args = dict(model="gemma", prompt=PROMPT, max_tokens=8, temperature=0.9, seed=99)
    client.completions.create(**{**args, "max_tokens": 1})  # the same KV-cache state for both runs
    plain = client.completions.create(**args)
    chunks = list(loose.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plain.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == plain.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_stop_and_logprobs(client: OpenAI) -> None:
    client.completions.create(model="gemma", prompt=PROMPT, max_tokens=1)  # the same KV-cache state for both runs
    ref = client.completions.create(model="gemma", prompt=PROMPT, max_tokens=8, logprobs=2)
    lp = ref.choices[0].logprobs
    assert "".join(lp.tokens) == ref.choices[0].text
    assert len(lp.token_logprobs) == len(lp.tokens) == len(lp.top_logprobs) == 8
    assert all(len(t) == 2 for t in lp.top_logprobs)
    stop = ref.choices[0].text.split()[1]
    r = client.completions.create(model="gemma", prompt=PROMPT, max_tokens=8, stop=stop)
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == ref.choices[0].text[: ref.choices[0].text.index(stop)]
