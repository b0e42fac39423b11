"""The Open Responses API against the real llama-cpp backend.

Oracles: ``openresponses_types`` (every response body and every streamed event) and the official
``openai`` SDK in strict mode (``responses.create/stream/retrieve/cancel``, ``input_items.list``).
"""

from __future__ import annotations

import asyncio
import copy
import enum
import json
import os
import signal
import time
import typing
from pathlib import Path
from typing import Any

import httpx
import openai
import openresponses_types as ort
import pytest
from localai.config import ModelConfig
from localai.errors import APIError
from localai.events import Finish, ReasoningDelta, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from localai.server.api.responses import items as response_items
from localai.server.api.responses import resource
from localai.server.api.responses.emitter import Emitter
from localai.server.api.responses.models import CreateBody
from localai.testing import ServerProcess, worker_pids
from localai.types import Usage
from openai import OpenAI
from pydantic import BaseModel

LONG = "Write a very long story about a lighthouse keeper and the sea, in many paragraphs."
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
YES_NO = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
          "required": ["answer"], "additionalProperties": False}
REQUIRED = {"id", "object", "created_at", "completed_at", "status", "incomplete_details", "model", "previous_response_id",
            "instructions", "output", "error", "tools", "tool_choice", "truncation", "parallel_tool_calls", "text", "top_p",
            "presence_penalty", "frequency_penalty", "top_logprobs", "temperature", "reasoning", "usage",
            "max_output_tokens", "max_tool_calls", "store", "background", "service_tier", "metadata",
            "safety_identifier", "prompt_cache_key"}
TERMINAL_EVENTS = {"response.completed", "response.incomplete", "response.failed"}


def _event_models() -> dict[str, type[BaseModel]]:
    """Event type -> its ``*StreamingEvent`` model, read off each model's ``type`` field."""
    out: dict[str, type[BaseModel]] = {}
    for name, cls in vars(ort).items():
        if not (name.endswith("StreamingEvent") and isinstance(cls, type) and issubclass(cls, BaseModel)):
            continue
        ann = cls.model_fields["type"].annotation
        if isinstance(ann, type) and issubclass(ann, enum.Enum):
            values = [e.value for e in ann]
        else:
            values = list(typing.get_args(ann))
        for v in values:
            out[v] = cls
    return out


EVENT_MODELS = _event_models()


def validate_resource(body: dict[str, Any]) -> ort.ResponseResource:
    """Validate with the spec's ``ResponseResource``.

    openresponses-types 2.4.0 generates ``JsonSchemaResponseFormat.schema`` as type ``None`` (a
    generator artefact; the spec and the OpenAI SDK require the schema object), so only that one
    value is blanked before validating.
    """
    body = copy.deepcopy(body)
    fmt = body.get("text", {}).get("format", {})
    if fmt.get("type") == "json_schema":
        assert isinstance(fmt.get("schema"), dict)
        fmt["schema"] = None
    assert REQUIRED <= body.keys(), REQUIRED - body.keys()
    return ort.ResponseResource.model_validate(body)


def iter_sse(lines: typing.Iterable[str]) -> typing.Iterator[tuple[str | None, str]]:
    name, data = None, []
    for line in lines:
        if line == "":
            if data:
                yield name, "\n".join(data)
            name, data = None, []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield name, "\n".join(data)


def parse_sse(lines: typing.Iterable[str]) -> list[tuple[str | None, str]]:
    return list(iter_sse(lines))


def check_stream(raw: list[tuple[str | None, str]], first: tuple[str, ...] = ("response.created", "response.in_progress"),
                 after: int = -1) -> list[dict[str, Any]]:
    """Every event valid, named, numbered upwards and in the spec's order; ends with ``[DONE]``."""
    assert raw and raw[-1] == (None, "[DONE]"), raw[-1:]
    events = []
    last = after
    for name, data in raw[:-1]:
        ev = json.loads(data)
        assert name == ev["type"], (name, ev["type"])
        assert ev["type"] in EVENT_MODELS, ev["type"]
        EVENT_MODELS[ev["type"]].model_validate(ev)
        if "response" in ev:
            validate_resource(ev["response"])
        assert ev["sequence_number"] > last
        last = ev["sequence_number"]
        events.append(ev)
    types = [e["type"] for e in events]
    assert tuple(types[:len(first)]) == first, types[:3]
    assert types[-1] in TERMINAL_EVENTS and all(t not in TERMINAL_EVENTS for t in types[:-1]), types
    assert len({e["response"]["id"] for e in events if "response" in e}) == 1
    # Per item: added -> (part added -> deltas -> done -> part done | argument deltas -> done) -> item done.
    state: dict[int, str] = {}
    for ev in events:
        t, idx = ev["type"], ev.get("output_index")
        if t == "response.output_item.added":
            assert idx not in state and idx == len(state)
            state[idx] = "added"
        elif t == "response.content_part.added":
            assert state[idx] == "added"
            state[idx] = "part"
        elif t in ("response.output_text.delta", "response.reasoning.delta"):
            assert state[idx] == "part"
        elif t in ("response.output_text.done", "response.reasoning.done"):
            assert state[idx] == "part"
            state[idx] = "text_done"
        elif t == "response.content_part.done":
            assert state[idx] == "text_done"
            state[idx] = "part_done"
        elif t == "response.function_call_arguments.delta":
            assert state[idx] == "added"
        elif t == "response.function_call_arguments.done":
            assert state[idx] == "added"
            state[idx] = "args_done"
        elif t == "response.output_item.done":
            assert state[idx] in ("part_done", "args_done", "added")
            state[idx] = "done"
    assert all(s == "done" for s in state.values()), state
    final = events[-1]["response"]
    assert len(final["output"]) == len(state)
    return events


def stream_raw(base_url: str, path: str, method: str = "POST", **kwargs: Any) -> list[tuple[str | None, str]]:
    with httpx.stream(method, base_url + path, timeout=120, **kwargs) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        return parse_sse(r.iter_lines())


@pytest.fixture(scope="module")
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url + "/v1", api_key="unused", _strict_response_validation=True, max_retries=0)


def wait_for(client: OpenAI, rid: str, statuses: set[str], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        resp = client.responses.retrieve(rid)
        if resp.status in statuses or time.monotonic() > deadline:
            return resp
        time.sleep(0.1)


# -- plain requests ----------------------------------------------------------------------------


def test_create_returns_every_field_and_stops_at_max_output_tokens(client: OpenAI) -> None:
    raw = client.responses.with_raw_response.create(
        model="gemma", instructions="You are a storyteller.", max_output_tokens=16, temperature=0,
        input=[{"role": "developer", "content": "Use simple words."},
               {"type": "message", "role": "user", "content": [{"type": "input_text", "text": LONG}]}],
        metadata={"case": "plain"}, extra_body={"some_future_field": {"x": 1}},
    )
    resp = raw.parse()
    body = raw.http_response.json()
    validate_resource(body)
    assert body["id"].startswith("resp_") and body["object"] == "response"
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["completed_at"] is None
    assert body["instructions"] == "You are a storyteller." and body["metadata"] == {"case": "plain"}
    assert body["temperature"] == 0 and body["max_output_tokens"] == 16 and body["store"] is True
    assert body["tool_choice"] == "auto" and body["tools"] == [] and body["text"] == {"format": {"type": "text"}}
    [msg] = body["output"]
    assert msg["type"] == "message" and msg["role"] == "assistant" and msg["status"] == "incomplete"
    [part] = msg["content"]
    assert part["type"] == "output_text" and part["text"] and part["annotations"] == [] and part["logprobs"] == []
    usage = body["usage"]
    assert usage["input_tokens"] > 10 and 0 < usage["output_tokens"] <= 16
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"]["cached_tokens"] >= 0 and usage["output_tokens_details"]["reasoning_tokens"] == 0
    assert resp.output_text == part["text"]
    # Stored by default: the same object comes back.
    assert client.responses.with_raw_response.retrieve(resp.id).http_response.json() == body


def test_stream_events_follow_the_spec(base_url: str, client: OpenAI) -> None:
    raw = stream_raw(base_url, "/v1/responses", json={"model": "gemma", "input": LONG, "max_output_tokens": 16, "stream": True})
    events = check_stream(raw)
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text and final["response"]["output"][0]["content"][0]["text"] == text
    [done] = [e for e in events if e["type"] == "response.output_text.done"]
    assert done["text"] == text
    stored = client.responses.with_raw_response.retrieve(final["response"]["id"]).http_response.json()
    assert stored == final["response"]


def test_sdk_stream_with_json_schema_completes(client: OpenAI) -> None:
    fmt = {"type": "json_schema", "name": "yes_no", "schema": YES_NO, "strict": True}
    with client.responses.stream(model="gemma", input="Is the sky blue? Answer yes or no.", max_output_tokens=48,
                                 text={"format": fmt}) as stream:
        types = [ev.type for ev in stream]
        final = stream.get_final_response()
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert final.status == "completed" and final.completed_at is not None
    assert json.loads(final.output_text)["answer"] in ("yes", "no")
    body = client.responses.with_raw_response.retrieve(final.id).http_response.json()
    validate_resource(body)
    assert body["text"]["format"] == {**fmt, "description": None}


def test_unknown_fields_and_bad_values(base_url: str) -> None:
    def post(payload: dict[str, Any], path: str = "/v1/responses") -> httpx.Response:
        return httpx.post(base_url + path, json=payload, timeout=60)

    def assert_error(r: httpx.Response, status: int, type_: str, param: str | None) -> None:
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"]
        assert err["type"] == type_ and err["param"] == param, err

    assert_error(post({"model": "no-such-model", "input": "hi"}), 404, "not_found", "model")
    assert_error(post({"model": "gemma", "input": "hi", "temperature": 7}), 400, "invalid_request", "temperature")
    assert_error(post({"model": "gemma", "input": "hi", "background": True, "store": False}), 400, "invalid_request", "store")
    assert_error(post({"model": "gemma", "input": [{"type": "computer_call", "id": "x"}]}), 400, "invalid_request",
                 "input[0].type")
    assert_error(post({"model": "gemma", "input": [{"role": "wizard", "content": "hi"}]}), 400, "invalid_request",
                 "input[0].role")
    assert_error(post({"model": "gemma", "input": "hi", "tools": [WEATHER_TOOL],
                       "tool_choice": {"type": "function", "name": "nope"}}), 400, "invalid_request", "tool_choice")
    assert_error(post({"model": "gemma", "input": "hi", "tools": [{"type": "web_search"}]}), 400, "invalid_request",
                 "tools[0].type")
    assert_error(post({"model": "gemma", "input": [{"type": "item_reference", "id": "msg_missing"}]}), 404, "not_found",
                 "input[0].id")
    image = {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}
    r = post({"model": "gemma", "input": [image]})  # gemma-3-270m has no vision: refused before generating
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request" and "image" in r.json()["error"]["message"]
    assert_error(post({"model": "gemma", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x"}]}]}),
                 400, "invalid_request", "input")
    assert_error(httpx.get(base_url + "/v1/responses/resp_missing", timeout=10), 404, "not_found", None)
    assert_error(httpx.post(base_url + "/responses/resp_missing/cancel", timeout=10), 404, "not_found", None)
    assert_error(httpx.delete(base_url + "/v1/responses/resp_missing", timeout=10), 404, "not_found", None)
    # A foreground response cannot be cancelled; a stored one can be deleted, then it is gone.
    created = post({"model": "gemma", "input": "hi", "max_output_tokens": 1}, "/responses").json()
    validate_resource(created)
    assert_error(httpx.post(f"{base_url}/v1/responses/{created['id']}/cancel", timeout=10), 400, "invalid_request",
                 "response_id")
    deleted = httpx.delete(f"{base_url}/v1/responses/{created['id']}", timeout=10)
    assert deleted.json() == {"id": created["id"], "object": "response.deleted", "deleted": True}
    assert httpx.get(f"{base_url}/v1/responses/{created['id']}", timeout=10).status_code == 404
    # store: false is never kept.
    unstored = post({"model": "gemma", "input": "hi", "max_output_tokens": 1, "store": False}).json()
    assert unstored["store"] is False
    assert httpx.get(f"{base_url}/v1/responses/{unstored['id']}", timeout=10).status_code == 404


# -- chaining and tools ------------------------------------------------------------------------


def test_leaving_a_stream_cancels_its_generation(base_url: str, client: OpenAI) -> None:
    with httpx.stream("POST", base_url + "/v1/responses", timeout=60,
                      json={"model": "gemma", "input": LONG, "max_output_tokens": 1500, "stream": True}) as r:
        lines = r.iter_lines()
        first = next(ev for ev in (json.loads(line[5:]) for line in lines if line.startswith("data:")))
        assert first["type"] == "response.created"
        for line in lines:
            if "response.output_text.delta" in line:
                break
    done = wait_for(client, first["response"]["id"], {"cancelled", "completed", "incomplete", "failed"})
    assert done.status == "cancelled" and done.usage is None


def test_a_worker_dying_mid_stream_ends_with_response_failed(base_url: str, server: ServerProcess, client: OpenAI) -> None:
    assert client.responses.create(model="gemma", input="hi", max_output_tokens=1)  # the worker is up
    assert server.proc is not None
    with httpx.stream("POST", base_url + "/v1/responses", timeout=60,
                      json={"model": "gemma", "input": LONG, "max_output_tokens": 1500, "stream": True}) as r:
        raw: list[tuple[str | None, str]] = []
        lines = r.iter_lines()
        for name, data in iter_sse(lines):  # parse lazily: kill the worker at the first text delta
            raw.append((name, data))
            if name == "response.output_text.delta" and len(raw) == 5:
                for pid in worker_pids(server.proc.pid):
                    os.kill(pid, signal.SIGKILL)
    events = check_stream(raw)
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.failed" and final["status"] == "failed"
    assert final["error"]["code"] == "server_error" and "worker" in final["error"]["message"]
    assert final["output"][0]["status"] == "incomplete"
    # The model is reloaded for the next request.
    assert client.responses.create(model="gemma", input="hi", max_output_tokens=1).status in ("completed", "incomplete")


def test_previous_response_id_rebuilds_the_conversation(client: OpenAI) -> None:
    first = client.responses.create(model="gemma", input="My name is Ada.", max_output_tokens=8)
    second = client.responses.create(model="gemma", previous_response_id=first.id, input="What is my name?",
                                     max_output_tokens=8)
    assert second.previous_response_id == first.id
    assert second.usage.input_tokens > first.usage.input_tokens + 4  # the whole first turn is in the prompt
    page = client.responses.input_items.list(second.id, order="asc")
    assert [it.id for it in page.data][1] == first.output[0].id
    assert page.data[0].role == "user" and page.data[0].content[0].text == "My name is Ada."
    assert page.data[-1].content[0].text == "What is my name?"
    assert not page.has_more
    newest = client.responses.input_items.list(second.id, limit=1)
    assert newest.data[0].id == page.data[-1].id and newest.has_more
    # Items are referenceable by id.
    third = client.responses.create(model="gemma", input=[{"type": "item_reference", "id": first.output[0].id},
                                                          {"role": "user", "content": "Again?"}], max_output_tokens=1)
    assert client.responses.input_items.list(third.id, order="asc").data[0].id == first.output[0].id

    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="gemma", previous_response_id="resp_unknown", input="hi")
    err = info.value.body
    assert err["type"] == "not_found" and err["param"] == "previous_response_id"


def test_forced_function_call_streams_and_round_trips(base_url: str, client: OpenAI) -> None:
    raw = stream_raw(base_url, "/v1/responses", json={
        "model": "gemma", "input": "What is the weather in Paris?", "tools": [WEATHER_TOOL], "max_output_tokens": 64,
        "tool_choice": {"type": "function", "name": "get_weather"}, "stream": True})
    events = check_stream(raw)
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed"
    assert final["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert final["tools"] == [{**WEATHER_TOOL, "strict": None}]
    calls = [it for it in final["output"] if it["type"] == "function_call"]
    assert calls and calls[0]["name"] == "get_weather" and calls[0]["status"] == "completed"
    assert isinstance(json.loads(calls[0]["arguments"])["city"], str)
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta" and e["item_id"] == calls[0]["id"]]
    [args_done] = [e for e in events if e["type"] == "response.function_call_arguments.done" and e["item_id"] == calls[0]["id"]]
    assert deltas and args_done["arguments"] == calls[0]["arguments"]

    follow = client.responses.create(
        model="gemma", previous_response_id=final["id"], tools=[WEATHER_TOOL], max_output_tokens=16,
        input=[{"type": "function_call_output", "call_id": calls[0]["call_id"], "output": '{"temp_c": 21}'}])
    assert follow.status in ("completed", "incomplete")
    assert [it.type for it in follow.output] and follow.output[0].type in ("message", "function_call")
    listed = client.responses.input_items.list(follow.id, order="asc").data
    assert [it.type for it in listed] == ["message", "function_call", "function_call_output"]
    assert listed[1].call_id == listed[2].call_id == calls[0]["call_id"]


def test_items_become_chat_messages() -> None:
    conversation = asyncio.run(response_items.normalize([
        {"role": "user", "content": "weather?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "noon"}]},
    ], lookup=None))  # type: ignore[arg-type]
    assert all(it["id"] for it in conversation)
    messages = response_items.to_messages("Be brief.", conversation)
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assert messages[2].content == "Checking." and [c.id for c in messages[2].tool_calls or []] == ["c1", "c2"]
    assert (messages[3].tool_call_id, messages[3].name, messages[3].content) == ("c1", "get_weather", "sunny")
    assert (messages[4].name, messages[4].content) == ("get_time", "noon")


def _emit(events: list[Any], fail: APIError | None = None) -> list[dict[str, Any]]:
    body = CreateBody(model="m", input="hi", tools=[WEATHER_TOOL])
    em = Emitter(resource.new(body, rid="resp_test", model="m", config=ModelConfig(name="m"), status="in_progress"))
    out = [em.lifecycle("response.created"), em.lifecycle("response.in_progress")]
    for ev in events:
        out += em.feed(ev)
    if fail is not None:
        out += em.fail(fail)
    return check_stream([(e["type"], json.dumps(e)) for e in out] + [(None, "[DONE]")])


def test_reasoning_text_and_calls_become_items_in_order() -> None:
    events = _emit([
        ReasoningDelta("Think"), ReasoningDelta("ing."), TextDelta("Let me check."),
        ToolCallStart(0, "call_1", "get_weather"), ToolCallDelta(0, '{"city": '), ToolCallDelta(0, '"Paris"}'),
        ToolCallEnd(0, '{"city": "Paris"}'), Finish("tool_calls", Usage(prompt_tokens=5, completion_tokens=9)),
    ])
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed" and final["completed_at"] is not None
    assert [it["type"] for it in final["output"]] == ["reasoning", "message", "function_call"]
    assert final["output"][0]["content"] == [{"type": "reasoning_text", "text": "Thinking."}]
    assert [e["delta"] for e in events if e["type"] == "response.reasoning.delta"] == ["Think", "ing."]
    assert final["output"][2]["arguments"] == '{"city": "Paris"}' and final["output"][2]["call_id"] == "call_1"
    assert final["usage"]["total_tokens"] == 14


def test_a_failure_mid_stream_ends_with_response_failed() -> None:
    events = _emit([TextDelta("Hel")], fail=APIError("server", "the worker died", code="worker_died"))
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.failed" and final["status"] == "failed"
    assert final["error"]["code"] == "server_error" and final["error"]["message"] == "the worker died"
    assert final["output"][0]["status"] == "incomplete"


# -- background ---------------------------------------------------------------------------------


def test_background_polls_to_the_end_and_resumes_its_stream(base_url: str, client: OpenAI) -> None:
    raw = client.responses.with_raw_response.create(model="gemma", input=LONG, max_output_tokens=24, background=True)
    queued = raw.http_response.json()
    validate_resource(queued)
    assert queued["status"] == "queued" and queued["background"] is True and queued["output"] == []
    # Resume from event 1 while it runs: the stored events, then live ones until the end.
    live = check_stream(stream_raw(base_url, f"/v1/responses/{queued['id']}?stream=true&starting_after=1", method="GET"),
                        first=(), after=1)
    assert live[0]["sequence_number"] == 2 and live[-1]["type"] == "response.incomplete"
    done = wait_for(client, queued["id"], {"completed", "incomplete", "failed", "cancelled"})
    assert done.status == "incomplete" and done.incomplete_details.reason == "max_output_tokens"
    # Replaying everything after it finished gives queued -> in_progress -> ... from the store.
    full = check_stream(stream_raw(base_url, f"/v1/responses/{queued['id']}?stream=true", method="GET"),
                        first=("response.created", "response.in_progress"))
    assert full[0]["response"]["status"] == "queued" and full[1]["response"]["status"] == "in_progress"
    assert full[-1] == live[-1]
    # The SDK's retrieve(stream=True, starting_after=N) accepts the replay in strict mode.
    replay = list(client.responses.retrieve(queued["id"], stream=True, starting_after=len(full) - 3))
    assert [e.sequence_number for e in replay] == [len(full) - 2, len(full) - 1]


def test_background_cancel(client: OpenAI) -> None:
    resp = client.responses.create(model="gemma", input=LONG, max_output_tokens=1500, background=True)
    running = wait_for(client, resp.id, {"in_progress", "completed", "incomplete", "failed"})
    assert running.status == "in_progress"
    cancelled = client.responses.cancel(resp.id)
    assert cancelled.status == "cancelled" and cancelled.id == resp.id
    assert all(item.status == "incomplete" for item in cancelled.output)
    body = client.responses.with_raw_response.retrieve(resp.id).http_response.json()
    validate_resource(body)
    assert body["status"] == "cancelled"
    assert client.responses.cancel(resp.id).status == "cancelled"  # idempotent
    # The worker stopped: the model serves the next request.
    assert client.responses.create(model="gemma", input="hi", max_output_tokens=1).status in ("completed", "incomplete")


# -- persistence -------------------------------------------------------------------------------


def test_stored_responses_survive_a_restart_and_interrupted_ones_fail(models_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ServerProcess(models_dir, data_path=data, log_path=tmp_path / "first.log").start()
    try:
        c = OpenAI(base_url=first.url + "/v1", api_key="unused", _strict_response_validation=True, max_retries=0)
        kept = c.responses.with_raw_response.create(model="gemma", input="Hello", max_output_tokens=4).http_response.json()
        running = c.responses.create(model="gemma", input=LONG, max_output_tokens=1500, background=True)
        # Follow it until a batch of events with an open message item must have been saved, then kill the server.
        with httpx.stream("GET", f"{first.url}/v1/responses/{running.id}?stream=true", timeout=60) as r:
            for _, payload in iter_sse(r.iter_lines()):
                if json.loads(payload)["sequence_number"] >= 36:
                    break
        first.stop(sig=signal.SIGKILL)
    finally:
        first.stop()
    assert (data / "responses.sqlite3").is_file()
    with ServerProcess(models_dir, data_path=data, log_path=tmp_path / "second.log") as second:
        c = OpenAI(base_url=second.url + "/v1", api_key="unused", _strict_response_validation=True, max_retries=0)
        assert c.responses.with_raw_response.retrieve(kept["id"]).http_response.json() == kept
        assert c.responses.input_items.list(kept["id"]).data[0].content[0].text == "Hello"
        failed = c.responses.with_raw_response.retrieve(running.id).http_response.json()
        validate_resource(failed)
        assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
        assert failed["output"][0]["type"] == "message" and failed["output"][0]["status"] == "incomplete"
        # The replay closes the open item before response.failed, so stream clients end cleanly.
        events = check_stream(stream_raw(second.url, f"/v1/responses/{running.id}?stream=true", method="GET"),
                              first=("response.created", "response.in_progress"))
        assert events[-1]["type"] == "response.failed" and events[-1]["response"] == failed
        assert [e["type"] for e in events[-4:-1]] == ["response.output_text.done", "response.content_part.done",
                                                      "response.output_item.done"]
