"""The Anthropic adapter's translation and event rendering, without a server.

The streaming renderer is fed engine events directly, so tool_use rendering is checked even where
the real model would need the tools engine; every produced event is validated with the SDK's own types.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent
from localai.engine import Result
from localai.errors import APIError
from localai.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from localai.server.api.anthropic import render, stream
from localai.server.api.anthropic.models import MessagesBody
from localai.server.api.anthropic.translate import to_request
from localai.types import ToolCall, Usage
from pydantic import TypeAdapter

SDK_EVENT = TypeAdapter(RawMessageStreamEvent)


def body(**kw: object) -> MessagesBody:
    base: dict[str, object] = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    return MessagesBody.model_validate({**base, **kw})


def run_stream(events: list[Event | BaseException], stops: list[str] | None = None) -> list[dict]:
    async def source() -> AsyncIterator[Event]:
        for ev in events:
            if isinstance(ev, BaseException):
                raise ev
            yield ev

    async def gather() -> list[dict]:
        out = []
        async for frame in stream.events(source(), "m", stops or [], 5):
            # One SSE frame each: an ``event:`` line naming the type, one ``data:`` line, a blank line.
            text = frame.decode()
            assert text.endswith("\n\n") and text.count("\n") == 3, text
            event_line, data_line = text.splitlines()[:2]
            data = json.loads(data_line.removeprefix("data: "))
            assert event_line == f"event: {data['type']}"
            out.append(data)
        return out

    return asyncio.run(gather())


def accumulate(events: list[dict]) -> SDKMessage:
    """Replays events the way the SDK's stream helper does, validating each with the SDK types."""
    from anthropic.lib.streaming._messages import accumulate_event

    snapshot = None
    bufs: dict[int, bytes] = {}
    for data in events:
        if data["type"] == "ping":
            continue
        snapshot = accumulate_event(event=SDK_EVENT.validate_python(data), current_snapshot=snapshot, json_bufs=bufs)
    assert snapshot is not None
    return SDKMessage.model_validate(snapshot.model_dump())


def test_system_blocks_sampling_and_stops_map_to_the_request() -> None:
    req = to_request(body(system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
                          stop_sequences=["END", ""], temperature=0.5, top_p=0.9, top_k=20, thinking={"type": "enabled", "budget_tokens": 1024}))
    assert req.messages is not None and req.messages[0].role == "system"
    assert req.messages[0].content == "Be brief.\n\nBe kind."
    assert req.stop == ["END"]
    assert (req.sampling.temperature, req.sampling.top_p, req.sampling.top_k) == (0.5, 0.9, 20)
    assert req.max_tokens == 8 and req.reasoning is True


def test_tool_blocks_become_tool_calls_and_tool_messages() -> None:
    req = to_request(body(
        tools=[{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "Need the tool.", "signature": "s"},
                                              {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": [{"type": "text", "text": "rain"}], "is_error": True},
                                         {"type": "text", "text": "So?"}]},
        ]))
    assert req.tools is not None and req.tools[0].parameters["properties"]["city"] == {"type": "string"}
    assert req.tool_choice is not None
    assert (req.tool_choice.mode, req.tool_choice.name, req.tool_choice.parallel) == ("named", "get_weather", False)
    assistant, tool, user = req.messages[1:]  # type: ignore[index]
    assert assistant.tool_calls == [ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Paris"}')]
    assert assistant.reasoning == "Need the tool."
    assert (tool.role, tool.tool_call_id) == ("tool", "toolu_1")
    assert "rain" in tool.text() and tool.text().startswith("Error")
    assert user.role == "user" and user.text() == "So?"


def test_output_config_format_becomes_a_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    req = to_request(body(output_config={"format": {"type": "json_schema", "schema": schema}}, metadata={"user_id": "u1"}))
    assert req.response_format is not None
    assert (req.response_format.type, req.response_format.schema_) == ("json_schema", schema)


@pytest.mark.parametrize("choice, mode", [({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none")])
def test_tool_choice_modes(choice: dict, mode: str) -> None:
    req = to_request(body(tools=[{"name": "t", "input_schema": {"type": "object"}}], tool_choice=choice))
    assert req.tool_choice is not None and req.tool_choice.mode == mode


def test_images_become_data_urls_or_urls() -> None:
    req = to_request(body(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
        {"type": "text", "text": "What is this?"}]}]))
    assert req.messages is not None
    assert [(p.image_url, p.where) for p in req.messages[0].images()] == [
        ("data:image/png;base64,AAAA", "messages.0.content.0.source"), ("https://example.com/a.jpg", "messages.0.content.1.source")]


@pytest.mark.parametrize("kw, needle", [
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, "messages.0.content.0"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/tiff",
                                                                             "data": "A"}}]}]}, "messages.0.content.0"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "x"}]}]}, "assistant"),
    ({"tool_choice": {"type": "any"}}, "requires tools"),
    ({"tools": [{"name": "a", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "b"}}, "'b'"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search_20250305"),
])
def test_bad_requests_name_the_problem(kw: dict, needle: str) -> None:
    with pytest.raises(APIError) as info:
        to_request(body(**kw))
    assert info.value.status == 400 and needle in info.value.message


@pytest.mark.parametrize("finish, stops, expected", [
    (Finish("stop"), [], ("end_turn", None)),
    (Finish("stop", stop_sequence="<end_of_turn>"), ["END"], ("end_turn", None)),
    (Finish("stop", stop_sequence="END"), ["END"], ("stop_sequence", "END")),
    (Finish("length"), [], ("max_tokens", None)),
    (Finish("tool_calls"), [], ("tool_use", None)),
])
def test_stop_reasons(finish: Finish, stops: list[str], expected: tuple) -> None:
    assert render.stop_reason(finish, stops) == expected


def test_non_streaming_message_validates_with_the_sdk() -> None:
    result = Result(text="Hello", reasoning="think", tool_calls=[ToolCall(id="call_1", name="f", arguments='{"a": 1}')],
                    finish=Finish("tool_calls", Usage(prompt_tokens=7, completion_tokens=3)))
    msg = SDKMessage.model_validate(render.message(result, "m", []))
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    tool = msg.content[2]
    assert tool.type == "tool_use" and tool.id.startswith("toolu_") and tool.input == {"a": 1}
    assert msg.stop_reason == "tool_use" and msg.id.startswith("msg_")
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (7, 3)
    assert (msg.usage.cache_read_input_tokens, msg.usage.cache_creation_input_tokens) == (0, 0)


def test_cached_prompt_tokens_are_cache_reads() -> None:
    msg = SDKMessage.model_validate(render.message(
        Result(text="x", finish=Finish("stop", Usage(prompt_tokens=10, completion_tokens=1, cached_tokens=8))), "m", []))
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.cache_creation_input_tokens) == (2, 8, 0)


def test_stream_of_text_reasoning_and_tool_call() -> None:
    events = run_stream([
        ReasoningDelta("hmm"), TextDelta("Hi"), TextDelta(" there"),
        ToolCallStart(0, "call_9", "f"), ToolCallDelta(0, '{"a"'), ToolCallDelta(0, ': 1}'), ToolCallEnd(0, '{"a": 1}'),
        Finish("tool_calls", Usage(prompt_tokens=5, completion_tokens=9)),
    ])
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert types.count("ping") == 1 and types.count("content_block_start") == types.count("content_block_stop") == 3
    json_deltas = [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"]
    assert json_deltas == ['{"a"', ': 1}']
    msg = accumulate(events)
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert msg.content[1].text == "Hi there"  # type: ignore[union-attr]
    assert msg.content[2].input == {"a": 1} and msg.content[2].id.startswith("toolu_")  # type: ignore[union-attr]
    assert msg.stop_reason == "tool_use" and msg.usage.output_tokens == 9


def test_tool_arguments_given_only_whole_are_still_sent() -> None:
    events = run_stream([ToolCallStart(0, "toolu_x", "f"), ToolCallEnd(0, '{"b": [1]}'), Finish("tool_calls")])
    msg = accumulate(events)
    assert msg.content[0].type == "tool_use" and msg.content[0].input == {"b": [1]} and msg.content[0].id == "toolu_x"


def test_stream_reports_stop_sequence() -> None:
    msg = accumulate(run_stream([TextDelta("abc"), Finish("stop", stop_sequence="END")], stops=["END"]))
    assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", "END")


def test_failure_mid_stream_is_an_error_event() -> None:
    events = run_stream([TextDelta("partial"), RuntimeError("engine blew up")])
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] == "api_error" and "engine blew up" in events[-1]["error"]["message"]
    assert "message_stop" not in [e["type"] for e in events]
