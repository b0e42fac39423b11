"""Tool calling and text.format through the OpenAI SDK's Responses API on the real Gemma 3 270M."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.tools.conftest import CITY_ANSWER, DESCRIPTIONS, SCHEMAS, check_call

TOOLS = [{"type": "function", "name": n, "description": DESCRIPTIONS[n], "parameters": s, "strict": True} for n, s in SCHEMAS.items()]
ASK = "What is the weather in Paris?"


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, _strict_response_validation=True)


def test_required_with_two_tools(client):
    r = client.responses.create(model="gemma", input=ASK, tools=TOOLS, tool_choice="required", max_output_tokens=60, store=False)
    calls = [i for i in r.output if i.type == "function_call"]
    assert calls and r.status == "completed"
    for c in calls:
        assert c.call_id
        check_call(c.name, c.arguments)


def test_required_streamed(client):
    deltas: dict[str, str] = {}
    done: dict[str, tuple[str, str]] = {}
    names: dict[str, str] = {}
    for ev in client.responses.create(model="gemma", input=ASK, tools=TOOLS, tool_choice="required", max_output_tokens=60,
                                      stream=True, store=False):
        if ev.type == "response.output_item.added" and ev.item.type == "function_call":
            names[ev.item.id] = ev.item.name
            deltas[ev.item.id] = ""
        elif ev.type == "response.function_call_arguments.delta":
            deltas[ev.item_id] += ev.delta
        elif ev.type == "response.function_call_arguments.done":
            done[ev.item_id] = (names[ev.item_id], ev.arguments)
    assert done
    for item_id, (name, arguments) in done.items():
        assert deltas[item_id] == arguments
        check_call(name, arguments)


def test_named_tool(client):
    r = client.responses.create(model="gemma", input="What is 2 plus 3?", tools=TOOLS,
                                tool_choice={"type": "function", "name": "add"}, max_output_tokens=60, store=False)
    calls = [i for i in r.output if i.type == "function_call"]
    assert [c.name for c in calls] == ["add"]
    check_call("add", calls[0].arguments)


def test_text_format_json_schema(client):
    r = client.responses.create(model="gemma", input="Which city is the capital of France? Answer in JSON.", max_output_tokens=60,
                                text={"format": {"type": "json_schema", "name": "capital", "schema": CITY_ANSWER, "strict": True}},
                                store=False)
    jsonschema.validate(json.loads(r.output_text), CITY_ANSWER)


def test_round_trip_function_call_output_then_plain_answer(client):
    first = client.responses.create(model="gemma", input=ASK, tools=TOOLS, tool_choice={"type": "function", "name": "get_weather"},
                                    max_output_tokens=60, store=False)
    call = next(i for i in first.output if i.type == "function_call")
    items = [{"role": "user", "content": ASK},
             {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
             {"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"temperature_c": 18, "sky": "sunny"})}]
    r = client.responses.create(model="gemma", input=items, tools=TOOLS, tool_choice="none", max_output_tokens=40, store=False)
    assert not [i for i in r.output if i.type == "function_call"]
    assert r.output_text.strip()
