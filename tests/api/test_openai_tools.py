"""Tool calls and legacy function calls through the OpenAI adapter with the real model.

Forcing a named tool makes the shared tools engine (issue 6) constrain the output, so these
check the adapter's mapping end to end; deep tool-parsing tests live with the tools engine.
"""

from __future__ import annotations

import json

import pytest
from openai import OpenAI

WEATHER = {"name": "get_weather", "description": "Current weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                          "required": ["city"], "additionalProperties": False}}
ASK = [{"role": "user", "content": "What is the weather in Oslo?"}]


@pytest.fixture(scope="module")
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, timeout=120, _strict_response_validation=True)


def test_forced_tool_call_is_returned_as_tool_calls(client: OpenAI) -> None:
    r = client.chat.completions.create(model="gemma", messages=ASK, max_tokens=48,
                                       tools=[{"type": "function", "function": WEATHER}],
                                       tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert not choice.message.content
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)


def test_forced_tool_call_streams_through_the_sdk_helper(client: OpenAI) -> None:
    with client.chat.completions.stream(model="gemma", messages=ASK, max_tokens=48,
                                        tools=[{"type": "function", "function": WEATHER}],
                                        tool_choice={"type": "function", "function": {"name": "get_weather"}}) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    assert any(e.type == "tool_calls.function.arguments.done" for e in events)
    assert not any(e.type == "content.delta" and e.delta for e in events)
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.name == "get_weather"
    json.loads(choice.message.tool_calls[0].function.arguments)


def test_legacy_function_call(client: OpenAI) -> None:
    r = client.chat.completions.create(model="gemma", messages=ASK, max_tokens=48, functions=[WEATHER],
                                       function_call={"name": "get_weather"})
    choice = r.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.tool_calls is None
    assert choice.message.function_call.name == "get_weather"
    assert isinstance(json.loads(choice.message.function_call.arguments)["city"], str)


def test_tool_choice_none_answers_in_text(client: OpenAI) -> None:
    r = client.chat.completions.create(model="gemma", messages=ASK, max_tokens=6,
                                       tools=[{"type": "function", "function": WEATHER}], tool_choice="none")
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.choices[0].message.content
