"""``/v1/chat/completions`` through the official SDK in strict mode, against the real Gemma model."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest
from openai import BadRequestError, OpenAI

MSG = [{"role": "user", "content": "Write one short sentence about the sea."}]


def warm(client: OpenAI, **args) -> None:
    """Run the prompt once so the compared requests start from the same KV-cache state.

    llama.cpp's logits differ in the last bits between a cold prompt and one whose prefix is
    cached (different batch shapes), which can flip a near-tie under greedy or seeded sampling.
    """
    client.chat.completions.create(**{**args, "max_tokens": 1, "max_completion_tokens": None, "n": 1})


@pytest.fixture(scope="module")
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, timeout=120, _strict_response_validation=True)


def test_plain_chat(client: OpenAI) -> None:
    r = client.chat.completions.create(model="gemma", messages=[{"role": "developer", "content": "Be brief."}, *MSG],
                                       max_tokens=8, user="someone")
    assert r.object == "chat.completion" and r.model == "gemma" and r.id.startswith("chatcmpl-")
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.message.tool_calls is None
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_text_equals_plain_text_for_the_same_seed(client: OpenAI) -> None:
    args = dict(model="gemma", messages=MSG, max_completion_tokens=6, temperature=1.0, seed=1234)
    warm(client, **args)
    plain = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    *body, last_choice, usage_chunk = chunks
    assert all(c.choices[0].finish_reason is None for c in body)
    assert last_choice.choices[0].finish_reason == plain.choices[0].finish_reason
    assert usage_chunk.choices == [] and usage_chunk.usage.completion_tokens == plain.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in body + [last_choice])
    assert text == plain.choices[0].message.content


def test_stream_helper(client: OpenAI) -> None:
    # The helper refuses finish_reason "length", so stop at the first space or newline.
    with client.chat.completions.stream(model="gemma", messages=MSG, max_tokens=32, stop=[" ", "\n"]) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "stop"
    assert "".join(deltas) == final.choices[0].message.content
    assert " " not in final.choices[0].message.content


def test_n_choices_use_consecutive_seeds(client: OpenAI) -> None:
    args = dict(model="gemma", messages=MSG, max_tokens=6, temperature=1.0)
    warm(client, **args)
    both = client.chat.completions.create(**args, n=2, seed=40)
    assert [c.index for c in both.choices] == [0, 1]
    second = client.chat.completions.create(**args, seed=41)
    assert both.choices[1].message.content == second.choices[0].message.content
    # Usage counts the prompt once and sums completion tokens over the choices.
    assert both.usage.prompt_tokens == second.usage.prompt_tokens
    assert both.usage.completion_tokens > second.usage.completion_tokens


def test_stop_string_ends_the_text_before_it(client: OpenAI) -> None:
    warm(client, model="gemma", messages=MSG)
    ref = client.chat.completions.create(model="gemma", messages=MSG, max_tokens=12).choices[0].message.content
    words = ref.split()
    assert len(words) >= 2, ref
    stop = words[1]
    r = client.chat.completions.create(model="gemma", messages=MSG, max_tokens=12, stop=[stop, "zzzz"])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == ref[: ref.index(stop)]


def test_length_finish_reason(client: OpenAI) -> None:
    r = client.chat.completions.create(model="gemma", messages=MSG, max_tokens=3)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3


def test_logprobs(client: OpenAI) -> None:
    r = client.chat.completions.create(model="gemma", messages=MSG, max_tokens=4, logprobs=True, top_logprobs=2)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 2
        assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob
        assert t.logprob <= t.top_logprobs[0].logprob + 1e-6


def test_json_schema_response_format(client: OpenAI) -> None:
    schema = {"type": "object", "properties": {"mood": {"type": "string", "enum": ["calm", "stormy"]}},
              "required": ["mood"], "additionalProperties": False}
    r = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Is the sea calm or stormy today? Answer in JSON."}],
        max_tokens=24, response_format={"type": "json_schema", "json_schema": {"name": "sea", "schema": schema}})
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)


def test_image_input_on_a_text_model_is_a_400(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as info:
        client.chat.completions.create(model="gemma", max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
    assert info.value.body["code"] == "vision_not_supported"


def test_unknown_fields_are_ignored_and_model_defaults(base_url: str) -> None:
    r = httpx.post(base_url + "/chat/completions", timeout=120, json={
        "messages": MSG, "max_tokens": 2, "base_url": "http://elsewhere", "user": "u", "timeout": 30, "top_p": None})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "gemma"
