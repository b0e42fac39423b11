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
