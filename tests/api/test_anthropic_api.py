"""The Anthropic Messages API through the official SDK in strict mode, against the real llama-cpp backend."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import jsonschema
import pytest
from anthropic.types import Message
from localai.testing import GGUF_NAME, ServerProcess, write_models

USER = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
                     "required": ["city"]},
}


@pytest.fixture(scope="module")
def client(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="unused", _strict_response_validation=True, max_retries=0)


def text_of(msg: Message) -> str:
    return "".join(b.text for b in msg.content if b.type == "text")


def prompt_total(usage: object) -> int:
    """Anthropic splits the prompt into uncached input, cache reads and cache writes; the three add up."""
    get = (lambda k: usage[k]) if isinstance(usage, dict) else (lambda k: getattr(usage, k))  # type: ignore[index]
    return get("input_tokens") + get("cache_read_input_tokens") + get("cache_creation_input_tokens")


def test_create_with_string_and_block_system_prompts(client: anthropic.Anthropic) -> None:
    plain = client.messages.create(model="gemma", max_tokens=6, system="You are terse.", messages=USER)
    blocks = client.messages.create(model="gemma", max_tokens=6, system=[{"type": "text", "text": "You are terse."}], messages=USER)
    bare = client.messages.count_tokens(model="gemma", messages=USER)
    assert plain.id.startswith("msg_") and plain.type == "message" and plain.role == "assistant" and plain.model == "gemma"
    assert text_of(plain) and text_of(blocks) == text_of(plain)  # greedy: same prompt, same answer
    assert prompt_total(blocks.usage) == prompt_total(plain.usage) > bare.input_tokens  # the system prompt reached the model
    assert plain.usage.output_tokens == 6 and plain.stop_reason == "max_tokens" and plain.stop_sequence is None


def test_stream_and_final_message_match_create(client: anthropic.Anthropic) -> None:
    kw = dict(model="gemma", max_tokens=8, messages=USER, extra_body={"temperature": 0.0, "top_p": 1.0, "top_k": 40})
    created = client.messages.create(**kw)  # type: ignore[arg-type]
    with client.messages.stream(**kw) as s:  # type: ignore[arg-type]
        pieces = [ev.delta.text for ev in s if ev.type == "content_block_delta" and ev.delta.type == "text_delta"]
        final = s.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == text_of(final) == text_of(created)
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 8
    assert prompt_total(final.usage) == prompt_total(created.usage) > 0


def test_stop_sequence_is_reported_with_the_one_that_matched(client: anthropic.Anthropic) -> None:
    free = text_of(client.messages.create(model="gemma", max_tokens=12, messages=USER))
    stop = free[3:6]
    assert stop.strip(), f"unexpected output {free!r}"
    msg = client.messages.create(model="gemma", max_tokens=12, messages=USER, stop_sequences=["zzz-never", stop])
    assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", stop)
    assert text_of(msg) == free[: free.index(stop)]
    with client.messages.stream(model="gemma", max_tokens=12, messages=USER, stop_sequences=[stop]) as s:
        final = s.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", stop)


def test_count_tokens_matches_usage(client: anthropic.Anthropic) -> None:
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Name a color."}]}]
    counted = client.messages.count_tokens(model="gemma", messages=msgs, system="Answer in one word.")  # type: ignore[arg-type]
    used = client.messages.create(model="gemma", max_tokens=1, messages=msgs, system="Answer in one word.")  # type: ignore[arg-type]
    assert counted.input_tokens == prompt_total(used.usage) > 5


def test_messages_route_without_v1_and_raw_sse_event_names(base_url: str) -> None:
    body = {"model": "gemma", "max_tokens": 4, "messages": USER}
    r = httpx.post(base_url + "/messages", json=body, timeout=60)
    assert r.status_code == 200
    Message.model_validate(r.json())
    names, datas = [], []
    with httpx.stream("POST", base_url + "/messages", json={**body, "stream": True}, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event:"):
                names.append(line[6:].strip())
            elif line.startswith("data:"):
                datas.append(json.loads(line[5:]))
    assert names == [d["type"] for d in datas]
    start, delta = datas[0], datas[-2]
    assert prompt_total(start["message"]["usage"]) == prompt_total(delta["usage"]) > 0  # known from the start
    assert delta["usage"]["output_tokens"] == 4 and delta["delta"]["stop_reason"] == "max_tokens"
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert {"content_block_start", "ping", "content_block_delta", "content_block_stop"} <= set(names)


def test_usage_reports_prompt_cache_reads(client: anthropic.Anthropic) -> None:
    """A repeated prompt is served from the prompt cache: the SDK (strict) sees it as cache reads."""
    msgs = [{"role": "user", "content": "Tell me about the history of the bicycle in a few sentences."}]
    first = client.messages.create(model="gemma", max_tokens=2, messages=msgs)  # type: ignore[arg-type]
    again = client.messages.create(model="gemma", max_tokens=2, messages=msgs)  # type: ignore[arg-type]
    for u in (first.usage, again.usage):
        assert u.cache_creation_input_tokens == 0 and u.cache_read_input_tokens is not None
    assert prompt_total(again.usage) == prompt_total(first.usage)
    assert again.usage.cache_read_input_tokens > 0 and again.usage.input_tokens < prompt_total(again.usage)
    with client.messages.stream(model="gemma", max_tokens=2, messages=msgs) as s:  # type: ignore[arg-type]
        final = s.get_final_message()
    assert final.usage.cache_read_input_tokens and prompt_total(final.usage) == prompt_total(first.usage)


@pytest.mark.parametrize("kw, error, kind", [
    ({"model": "no-such-model"}, anthropic.NotFoundError, "not_found_error"),
    ({"max_tokens": 0}, anthropic.BadRequestError, "invalid_request_error"),
    ({"extra_body": {"temperature": 1.5}}, anthropic.BadRequestError, "invalid_request_error"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                             "data": "iVBORw0KGgo="}}]}]},
     anthropic.BadRequestError, "invalid_request_error"),
])
def test_errors_have_anthropic_classes(client: anthropic.Anthropic, kw: dict, error: type, kind: str) -> None:
    args = {"model": "gemma", "max_tokens": 4, "messages": USER, **kw}
    with pytest.raises(error) as info:
        client.messages.create(**args)  # type: ignore[arg-type]
    body = info.value.body  # type: ignore[attr-defined]
    assert body["type"] == "error" and body["error"]["type"] == kind
    if "messages" in kw:
        assert "'gemma'" in body["error"]["message"] and "image" in body["error"]["message"]


def test_missing_max_tokens_is_a_400(base_url: str) -> None:
    r = httpx.post(base_url + "/v1/messages", json={"model": "gemma", "messages": USER}, timeout=30)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error" and "max_tokens" in r.json()["error"]["message"]


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with an API key and a model whose config declares a newline as its end of turn."""
    yaml = f"name: gemma-lines\nbackend: llama-cpp\ncontext_size: 512\nstopwords: [\"\\n\"]\nparameters:\n  model: {GGUF_NAME}\n  temperature: 0\n"
    folder = write_models(tmp_path_factory.mktemp("anthropic-models"), {"gemma-lines.yaml": yaml})
    with ServerProcess(folder, env={"LOCALAI_API_KEY": "sk-test"}) as srv:
        yield srv


def test_api_key_via_bearer_or_x_api_key(keyed_server: ServerProcess) -> None:
    bad = anthropic.Anthropic(base_url=keyed_server.url, api_key="wrong", _strict_response_validation=True, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(model="gemma-lines", max_tokens=1, messages=USER)
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    body = {"model": "missing", "max_tokens": 1, "messages": USER}
    for headers in ({"x-api-key": "sk-test"}, {"Authorization": "Bearer sk-test"}):
        r = httpx.post(keyed_server.url + "/v1/messages", json=body, headers={**headers, "anthropic-version": "2023-06-01"}, timeout=30)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"  # authenticated, then unknown model


def test_end_turn_when_the_model_ends_its_turn(keyed_server: ServerProcess) -> None:
    client = anthropic.Anthropic(base_url=keyed_server.url, api_key="sk-test", _strict_response_validation=True, max_retries=0)
    msg = client.messages.create(model="gemma-lines", max_tokens=40, messages=USER, stop_sequences=["zzz-never"])
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert "\n" not in text_of(msg) and msg.usage.output_tokens < 40
    with client.messages.stream(model="gemma-lines", max_tokens=40, messages=USER) as s:
        final = s.get_final_message()
    assert final.stop_reason == "end_turn" and text_of(final) == text_of(msg)


# -- tools: constrained by the shared tools engine (core/localai/tools) ------------------------------


def test_forced_tool_use_satisfies_the_schema(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(model="gemma", max_tokens=60, tools=[WEATHER], tool_choice={"type": "any"},  # type: ignore[list-item]
                                 messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert uses and all(u.name == "get_weather" and u.id.startswith("toolu_") for u in uses)
    for use in uses:
        jsonschema.validate(use.input, WEATHER["input_schema"])


def test_streamed_tool_use_sends_input_json_deltas(client: anthropic.Anthropic) -> None:
    pieces: dict[int, list[str]] = {}
    with client.messages.stream(model="gemma", max_tokens=60, tools=[WEATHER],  # type: ignore[list-item]
                                tool_choice={"type": "any", "disable_parallel_tool_use": True},
                                messages=[{"role": "user", "content": "Weather in Oslo?"}]) as s:
        for ev in s:
            if ev.type == "content_block_delta" and ev.delta.type == "input_json_delta":
                pieces.setdefault(ev.index, []).append(ev.delta.partial_json)
        final = s.get_final_message()
    uses = {i: b for i, b in enumerate(final.content) if b.type == "tool_use"}
    assert uses and final.stop_reason == "tool_use"
    assert set(pieces) == set(uses)
    for i, use in uses.items():
        assert len(pieces[i]) > 1, "tool input should stream in pieces, not one blob"
        assert json.loads("".join(pieces[i])) == use.input
        jsonschema.validate(use.input, WEATHER["input_schema"])


def test_named_tool_then_tool_result_round_trip(client: anthropic.Anthropic) -> None:
    question = {"role": "user", "content": "What is the weather in Paris?"}
    first = client.messages.create(model="gemma", max_tokens=60, tools=[WEATHER],  # type: ignore[list-item]
                                   tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
                                   messages=[question])  # type: ignore[list-item]
    uses = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use" and len(uses) == 1 and uses[0].name == "get_weather"
    jsonschema.validate(uses[0].input, WEATHER["input_schema"])
    history = [question, first.to_param()]

    def follow_up(result: str, is_error: bool = False) -> dict:
        return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": result, "is_error": is_error}]}

    short = client.messages.count_tokens(model="gemma", tools=[WEATHER], messages=[*history, follow_up("22 C")])  # type: ignore[list-item]
    long = client.messages.count_tokens(model="gemma", tools=[WEATHER],  # type: ignore[list-item]
                                        messages=[*history, follow_up("22 C, sunny, light wind from the west, humidity 40%")])
    assert long.input_tokens > short.input_tokens  # the tool result reaches the prompt
    answer = client.messages.create(model="gemma", max_tokens=8, tools=[WEATHER], tool_choice={"type": "none"},  # type: ignore[list-item]
                                    messages=[*history, follow_up("timeout", is_error=True)])  # type: ignore[list-item]
    assert answer.stop_reason in ("end_turn", "max_tokens") and text_of(answer)
