"""Refusals of unenforceable schemas in each API's own error shape, through the official SDKs (real server)."""

from __future__ import annotations

import anthropic
import pytest
from openai import BadRequestError, OpenAI

UNIQUE = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}


@pytest.fixture(scope="module")
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, timeout=120, _strict_response_validation=True)


def test_openai_response_format_refusal_names_keyword_and_path(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as info:
        client.chat.completions.create(model="gemma", max_tokens=4, messages=[{"role": "user", "content": "x"}],
                                       response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": UNIQUE}})
    body = info.value.body
    assert body["param"] == "response_format.json_schema.schema.properties.tags.uniqueItems"
    assert body["code"] == "unsupported_schema" and "uniqueItems" in body["message"]


def test_openai_forced_tool_refusal_names_the_tool_parameter(client: OpenAI) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "x": {"not": {"type": "string"}}}}}}
    with pytest.raises(BadRequestError) as info:
        client.chat.completions.create(model="gemma", max_tokens=4, messages=[{"role": "user", "content": "x"}],
                                       tools=[tool], tool_choice="required")
    assert info.value.body["param"] == "tools[0].parameters.properties.x.not"


def test_auto_tools_with_unenforceable_schemas_are_not_refused(client: OpenAI) -> None:
    """``auto`` only prompts with the tools: nothing is constrained, so nothing needs refusing."""
    tool = {"type": "function", "function": {"name": "f", "parameters": UNIQUE}}
    r = client.chat.completions.create(model="gemma", max_tokens=2, messages=[{"role": "user", "content": "hi"}], tools=[tool])
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_anthropic_forced_tool_refusal_is_an_invalid_request_error(base_url: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key="x", max_retries=0, _strict_response_validation=True)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="gemma", max_tokens=8, messages=[{"role": "user", "content": "x"}],
                               tools=[{"name": "f", "input_schema": UNIQUE}], tool_choice={"type": "any"})
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "invalid_request_error"
    assert "uniqueItems" in info.value.body["error"]["message"]
