"""Tool calling through the Anthropic SDK on the real Gemma 3 270M: tool_choice any/tool/none, streamed and not."""

from __future__ import annotations

import json

import anthropic
import pytest

from tests.tools.conftest import DESCRIPTIONS, SCHEMAS, check_call

TOOLS = [{"name": n, "description": DESCRIPTIONS[n], "input_schema": s} for n, s in SCHEMAS.items()]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="x", max_retries=0, _strict_response_validation=True)


def test_any_with_two_tools(client):
    r = client.messages.create(model="gemma", max_tokens=60, messages=ASK, tools=TOOLS, tool_choice={"type": "any"})
    assert r.stop_reason == "tool_use"
    uses = [b for b in r.content if b.type == "tool_use"]
    assert uses and all(b.type in ("tool_use", "text") for b in r.content)
    for b in uses:
        assert b.id.startswith("toolu_") and isinstance(b.input, dict)
        check_call(b.name, b.input)


def test_any_streamed(client):
    starts, partial = {}, {}
    with client.messages.stream(model="gemma", max_tokens=60, messages=ASK, tools=TOOLS, tool_choice={"type": "any"}) as s:
        for ev in s:
            if ev.type == "content_block_start" and ev.content_block.type == "tool_use":
                starts[ev.index] = ev.content_block.name
                partial[ev.index] = ""
            elif ev.type == "content_block_delta" and ev.delta.type == "input_json_delta":
                partial[ev.index] += ev.delta.partial_json
        final = s.get_final_message()
    assert final.stop_reason == "tool_use" and starts
    for i, name in starts.items():
        args = check_call(name, partial[i])
        assert any(b.type == "tool_use" and b.name == name and b.input == args for b in final.content)


def test_named_tool_without_parallel(client):
    r = client.messages.create(model="gemma", max_tokens=60, messages=[{"role": "user", "content": "What is 2 plus 3?"}],
                               tools=TOOLS, tool_choice={"type": "tool", "name": "add", "disable_parallel_tool_use": True})
    uses = [b for b in r.content if b.type == "tool_use"]
    assert [b.name for b in uses] == ["add"]
    check_call("add", uses[0].input)


def test_round_trip_tool_result_then_plain_answer(client):
    first = client.messages.create(model="gemma", max_tokens=60, messages=ASK, tools=TOOLS,
                                   tool_choice={"type": "tool", "name": "get_weather"})
    use = next(b for b in first.content if b.type == "tool_use")
    messages = [*ASK, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                              "content": json.dumps({"temperature_c": 18, "sky": "sunny"})}]}]
    r = client.messages.create(model="gemma", max_tokens=40, messages=messages, tools=TOOLS, tool_choice={"type": "none"})
    assert r.stop_reason in ("end_turn", "max_tokens")
    assert [b.type for b in r.content] == ["text"] and r.content[0].text.strip()
