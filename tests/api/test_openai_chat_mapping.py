"""The OpenAI chat adapter's translation in both directions, without a server.

Requests: OpenAI messages/tools/functions/response_format -> ``GenerateRequest``.
Responses: engine events -> chunks that the official SDK's own stream accumulator understands.
"""

from __future__ import annotations

import json

import pytest
from localai.errors import APIError
from localai.events import Finish, ReasoningDelta, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from localai.server.api.openai.chat import ChatBody, ChunkWriter, requests_for
from localai.types import TokenLogprob, Usage
from openai.lib.streaming.chat._completions import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def body(**fields) -> ChatBody:
    return ChatBody.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


def test_roles_parts_and_tool_history_map_to_internal_messages() -> None:
    req = requests_for(body(messages=[
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "look: "},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "assistant", "function_call": {"name": "lookup", "arguments": "{}"}},
        {"role": "function", "name": "lookup", "content": "42"},
    ]))[0]
    roles = [m.role for m in req.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool"]
    assert [(p.image_url, p.where) for p in req.messages[1].images()] == [
        ("https://example.com/a.png", "messages[1].content[1].image_url")]
    assert req.messages[1].text() == "look: "
    assert req.messages[2].tool_calls[0].name == "get_weather"
    assert json.loads(req.messages[2].tool_calls[0].arguments) == {"city": "Oslo"}
    assert (req.messages[3].tool_call_id, req.messages[3].name) == ("call_1", "get_weather")
    legacy_id = req.messages[4].tool_calls[0].id
    assert (req.messages[5].name, req.messages[5].tool_call_id) == ("lookup", legacy_id)


def test_tools_choice_and_format_map_to_request_fields() -> None:
    req = requests_for(body(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
                            parallel_tool_calls=False,
                            response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}}))[0]
    assert [t.name for t in req.tools] == ["get_weather"]
    assert req.tools[0].parameters["properties"] == {"city": {"type": "string"}}
    assert (req.tool_choice.mode, req.tool_choice.name, req.tool_choice.parallel) == ("named", "get_weather", False)
    assert (req.response_format.type, req.response_format.schema_) == ("json_schema", {"type": "object"})
    assert requests_for(body(tools=[WEATHER], tool_choice="required"))[0].tool_choice.mode == "required"
    assert requests_for(body(tools=[WEATHER]))[0].tool_choice.mode == "auto"
    assert requests_for(body(response_format={"type": "json_object"}))[0].response_format.type == "json_object"
    assert requests_for(body(response_format={"type": "text"}))[0].response_format is None


def test_legacy_functions_become_tools_with_a_single_call() -> None:
    req = requests_for(body(functions=[WEATHER["function"]], function_call={"name": "get_weather"}))[0]
    assert [t.name for t in req.tools] == ["get_weather"]
    assert (req.tool_choice.mode, req.tool_choice.name, req.tool_choice.parallel) == ("named", "get_weather", False)
    assert requests_for(body(functions=[WEATHER["function"]], function_call="none"))[0].tool_choice.mode == "none"


def test_sampling_per_choice_and_token_limits() -> None:
    reqs = requests_for(body(n=3, seed=7, max_tokens=5, max_completion_tokens=9, stop="END", logprobs=True, top_logprobs=2))
    assert [r.sampling.seed for r in reqs] == [7, 8, 9]
    assert {r.max_tokens for r in reqs} == {9}
    assert reqs[0].stop == ["END"] and reqs[0].logprobs == 2


@pytest.mark.parametrize("fields, param", [
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]},
     "messages[0].content[0].image_url"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
    ({"tools": [WEATHER], "functions": [WEATHER["function"]]}, "functions"),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    ({"top_logprobs": 2}, "top_logprobs"),
])
def test_bad_chat_input_is_a_400_naming_the_field(fields: dict, param: str) -> None:
    with pytest.raises(APIError) as info:
        requests_for(body(**fields))
    assert info.value.status == 400
    assert info.value.param == param


def replay(writer: ChunkWriter, events: list) -> list[dict]:
    chunks = [writer.chunk(0, {"role": "assistant", "content": ""})]
    for ev in events:
        chunks.extend(writer.events(0, ev))
    return chunks


def accumulate(chunks: list[dict]):
    """What the SDK's ``chat.completions.stream`` helper makes of our chunks (strictly validated)."""
    state = ChatCompletionStreamState()
    for c in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(c))
    return state.get_final_completion()


def test_tool_call_events_stream_as_openai_tool_call_deltas() -> None:
    writer = ChunkWriter(body(tools=[WEATHER]), "chatcmpl-1", 1, "m")
    chunks = replay(writer, [
        ToolCallStart(0, "call_a", "get_weather"), ToolCallDelta(0, '{"city": '), ToolCallDelta(0, '"Oslo"}'),
        ToolCallEnd(0, '{"city": "Oslo"}'),
        ToolCallStart(1, "call_b", "get_weather"), ToolCallEnd(1, '{"city": "Rome"}'),
        Finish("tool_calls", Usage(prompt_tokens=3, completion_tokens=4)),
    ])
    first = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert first == {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    assert all("content" not in c["choices"][0]["delta"] for c in chunks[1:])
    final = accumulate(chunks)
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        ("call_a", "get_weather", {"city": "Oslo"}), ("call_b", "get_weather", {"city": "Rome"})]


def test_legacy_functions_stream_as_function_call() -> None:
    writer = ChunkWriter(body(functions=[WEATHER["function"]]), "chatcmpl-1", 1, "m")
    chunks = replay(writer, [ToolCallStart(0, "call_a", "get_weather"), ToolCallDelta(0, '{"city":"Oslo"}'),
                             ToolCallEnd(0, '{"city":"Oslo"}'), Finish("tool_calls")])
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    assert deltas == [{"function_call": {"name": "get_weather", "arguments": ""}},
                      {"function_call": {"arguments": '{"city":"Oslo"}'}}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "function_call"
    for c in chunks:
        ChatCompletionChunk.model_validate(c)


def test_text_reasoning_and_logprobs_chunks() -> None:
    writer = ChunkWriter(body(logprobs=True, top_logprobs=1, stream_options={"include_usage": True}), "chatcmpl-1", 1, "m")
    lp = TokenLogprob(token="Hi", logprob=-0.5, bytes=[72, 105], top=[("Hi", -0.5)])
    chunks = replay(writer, [ReasoningDelta("thinking"), TextDelta("Hi", [lp]), Finish("stop")])
    assert chunks[1]["choices"][0]["delta"] == {"reasoning_content": "thinking"}
    assert chunks[2]["choices"][0]["delta"] == {"content": "Hi"}
    assert chunks[2]["choices"][0]["logprobs"]["content"][0]["top_logprobs"] == [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}]
    assert all(c["usage"] is None for c in chunks)
    final = accumulate(chunks)
    assert final.choices[0].message.content == "Hi"
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].logprobs.content[0].token == "Hi"
