"""Byte-level SSE framing on every streaming endpoint: lines end in a bare LF and events are separated by an
exactly empty line, as OpenAI, Anthropic and llama.cpp send (line-splitting parsers see no events otherwise)."""

from __future__ import annotations

import json

import httpx
import pytest

USER = [{"role": "user", "content": "Hi"}]
STREAMS = {
    "chat": ("/v1/chat/completions", {"messages": USER, "max_tokens": 4}),
    "completions": ("/v1/completions", {"prompt": "Hello", "max_tokens": 4}),
    "messages": ("/v1/messages", {"messages": USER, "max_tokens": 4}),
    "responses": ("/v1/responses", {"input": "Hi", "max_output_tokens": 4}),
}


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream_is_lf_framed(base_url: str, name: str) -> None:
    path, body = STREAMS[name]
    with httpx.stream("POST", base_url + path, json={"model": "gemma", "stream": True, **body}, timeout=60) as r:
        assert r.status_code == 200
        raw = r.read()
    assert b"\r" not in raw, raw[:200]
    assert raw.endswith(b"\n\n")
    # What a parser that splits on "\n" and dispatches on an empty line sees: every event parses.
    events = [block for block in raw.decode().split("\n\n") if block]
    assert len(events) >= 3
    for block in events:
        lines = block.split("\n")
        assert all(line.startswith(("data: ", "event: ")) for line in lines), block
        data = next(line[6:] for line in lines if line.startswith("data: "))
        if data != "[DONE]":
            json.loads(data)


# -- the frame encoder and the response, without a server ------------------------------------------

def test_frames_are_encoded_once_as_the_spec_parses_them() -> None:
    from localai.server.api import sse

    assert sse.event({"a": "é", "b": [1, None]}) == 'data: {"a":"é","b":[1,null]}\n\n'.encode()
    assert sse.event({"type": "ping"}, name="ping") == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert sse.event("[DONE]") == b"data: [DONE]\n\n"
    # A raw payload with line breaks of any SSE kind becomes one data line per line (joined back with "\n"
    # by the client); JSON never has raw breaks, and U+2028 is not an SSE line end.
    assert sse.event("a\r\nb\rc\nd\u2028e") == "data: a\ndata: b\ndata: c\ndata: d\u2028e\n\n".encode()


def test_event_stream_stops_and_closes_its_generator_when_the_client_leaves() -> None:
    import asyncio

    from localai.server.api import sse

    closed = asyncio.Event()
    sent: list[dict] = []

    async def frames():
        try:
            yield sse.event({"n": 1})
            await asyncio.sleep(3600)  # a generation still running when its client goes away
            yield sse.event({"n": 2})
        finally:
            closed.set()

    async def main() -> None:
        messages: asyncio.Queue[dict] = asyncio.Queue()

        async def receive() -> dict:
            return await messages.get()

        async def send(message: dict) -> None:
            sent.append(message)
            if message.get("body"):
                await messages.put({"type": "http.disconnect"})

        await asyncio.wait_for(sse.response(frames())({"type": "http"}, receive, send), 5)

    asyncio.run(main())
    assert closed.is_set()
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    assert [m["body"] for m in sent[1:]] == [b'data: {"n":1}\n\n']  # nothing more, and no closing send to nobody


def test_what_orjson_refuses_is_still_framed() -> None:
    from localai.runtime.worker import protocol
    from localai.server.api import sse

    big = {"seed": 2**70, "t": "a\nb"}
    assert sse.event(big) == b'data: {"seed":1180591620717411303424,"t":"a\\nb"}\n\n'
    assert protocol.decode(protocol.encode(big)) == big
    assert protocol.decode(protocol.encode({1: "x"})) == {"1": "x"}
