"""Tool calling and structured output through the OpenAI SDK on the real Gemma 3 270M."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.tools.conftest import ADD_PARAMS, CITY_ANSWER, DESCRIPTIONS, SCHEMAS, WEATHER_PARAMS, check_call

TOOLS = [{"type": "function", "function": {"name": n, "description": DESCRIPTIONS[n], "parameters": s}} for n, s in SCHEMAS.items()]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, _strict_response_validation=True)


def test_required_with_two_tools(client):
    r = client.chat.completions.create(model="gemma", messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=60)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls and not choice.message.content
    for call in choice.message.tool_calls:
        assert call.id and call.type == "function"
        check_call(call.function.name, call.function.arguments)


def test_required_streamed(client):
    calls: dict[int, dict] = {}
    finish = None
    content = ""
    for chunk in client.chat.completions.create(model="gemma", messages=ASK, tools=TOOLS, tool_choice="required",
                                                max_tokens=60, stream=True):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for tc in delta.tool_calls or []:
            if tc.index not in calls:
                assert tc.id and tc.function and tc.function.name, "the first delta of a call carries its id and name"
                calls[tc.index] = {"name": tc.function.name, "arguments": tc.function.arguments or ""}
            else:
                assert tc.id is None and tc.function.name is None
                calls[tc.index]["arguments"] += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and calls and not content
    for call in calls.values():
        check_call(call["name"], call["arguments"])


def test_named_tool(client):
    r = client.chat.completions.create(model="gemma", messages=[{"role": "user", "content": "What is 2 plus 3?"}], tools=TOOLS,
                                       tool_choice={"type": "function", "function": {"name": "add"}}, max_tokens=60)
    calls = r.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["add"]
    check_call("add", calls[0].function.arguments)


def test_legacy_functions_with_function_call_name(client):
    functions = [{"name": "get_weather", "description": DESCRIPTIONS["get_weather"], "parameters": WEATHER_PARAMS},
                 {"name": "add", "description": DESCRIPTIONS["add"], "parameters": ADD_PARAMS}]
    r = client.chat.completions.create(model="gemma", messages=ASK, functions=functions, function_call={"name": "get_weather"},
                                       max_tokens=60)
    choice = r.choices[0]
    assert choice.finish_reason == "function_call" and not choice.message.tool_calls
    assert choice.message.function_call.name == "get_weather"
    check_call("get_weather", choice.message.function_call.arguments)


def test_response_format_json_schema(client):
    r = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Which city is the capital of France? Answer in JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": CITY_ANSWER, "strict": True}},
        max_tokens=60)
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), CITY_ANSWER)


def test_round_trip_tool_result_then_plain_answer(client):
    first = client.chat.completions.create(model="gemma", messages=ASK, tools=TOOLS,
                                           tool_choice={"type": "function", "function": {"name": "get_weather"}}, max_tokens=60)
    call = first.choices[0].message.tool_calls[0]
    messages = [*ASK, first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 18, "sky": "sunny"}'}]
    r = client.chat.completions.create(model="gemma", messages=messages, tools=TOOLS, tool_choice="none", max_tokens=40)
    msg = r.choices[0].message
    assert not msg.tool_calls and msg.content and msg.content.strip()
    assert r.choices[0].finish_reason in ("stop", "length")


def test_named_tool_that_does_not_exist_is_a_400(client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gemma", messages=ASK, tools=TOOLS,
                                       tool_choice={"type": "function", "function": {"name": "nope"}}, max_tokens=5)
