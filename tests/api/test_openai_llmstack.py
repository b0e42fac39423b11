"""LLMStack's LocalAI processors, replayed: their exact request bodies and their line parser.

LLMStack (``llmstack/common/blocks/http.py`` + ``llm/localai.py``) reads the response with
``iter_lines()``, drops empty lines, decodes each with the response's charset, stops at the line
``data: [DONE]`` and otherwise does ``json.loads(line.split("data: ")[1])`` and
``ChatMessage(**choice["delta"])`` (fields role/content/name/function_call). Any ``event:`` or
comment line would crash that parser.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

# The fields of LLMStack's ChatMessage: a text reply must not need any other.
CHAT_MESSAGE_FIELDS = {"role", "content", "name", "function_call"}


def iter_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``requests.Response.iter_lines()``: bytes split on line breaks, across chunk boundaries."""
    pending = b""
    for chunk in chunks:
        lines = (pending + chunk).splitlines(keepends=True)
        pending = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        yield from (line.rstrip(b"\r\n") for line in lines)
    if pending:
        yield pending


def llmstack_stream(url: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """LLMStack's streaming loop, line for line; returns the parsed JSON of every data line."""
    out = []
    with httpx.stream("POST", url, json=payload, headers={"Authorization": "Bearer local"}, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        # requests decodes text/* without a charset as ISO-8859-1, so the charset matters.
        encoding = response.charset_encoding or "ISO-8859-1"
        for raw in iter_lines(response.iter_bytes()):
            if not raw:
                continue
            text = raw.decode(encoding)
            if text == "data: [DONE]":
                return out
            out.append(json.loads(text.split("data: ")[1]))
    raise AssertionError("the stream ended without data: [DONE]")


def chat_payload(base_url: str, stream: bool) -> dict[str, Any]:
    """What ``LocalAIChatCompletionsAPIProcessor._get_api_request_payload`` sends."""
    return {
        "base_url": base_url + "/v1", "model": "gemma", "max_tokens": 8, "temperature": 0.7, "top_p": 1.0,
        "stream": stream, "timeout": 60, "seed": 3,
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": "Name a colour."}],
        "user": "llmstack-user",
    }


def test_llmstack_chat_stream(base_url: str) -> None:
    payload = chat_payload(base_url, stream=True)
    httpx.post(base_url + "/v1/chat/completions", json={**payload, "stream": False, "max_tokens": 1}, timeout=120)  # same KV state
    chunks = llmstack_stream(payload["base_url"] + "/chat/completions", payload)
    assert chunks and all(len(c["choices"]) >= 1 for c in chunks)  # LLMStack's output needs min_items=1
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert all(set(d) <= CHAT_MESSAGE_FIELDS for d in deltas)
    assert deltas[0]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    streamed = "".join(d.get("content") or "" for d in deltas)
    plain = httpx.post(payload["base_url"] + "/chat/completions", json=chat_payload(base_url, stream=False), timeout=120)
    assert plain.status_code == 200
    assert set(plain.json()["choices"][0]["message"]) <= CHAT_MESSAGE_FIELDS
    assert streamed == plain.json()["choices"][0]["message"]["content"]


def test_llmstack_completions_with_null_top_p(base_url: str) -> None:
    """``LocalAICompletionsAPIProcessor`` sends unset options as null, ``top_p`` included."""
    payload = {"model": "gemma", "prompt": "Once upon a time", "max_tokens": 6, "temperature": None, "top_p": None,
               "stream": True}
    httpx.post(base_url + "/v1/completions", json={**payload, "stream": False, "max_tokens": 1}, timeout=120)  # same KV state
    chunks = llmstack_stream(base_url + "/v1/completions", payload)
    texts = [c["choices"][0].get("text", "") for c in chunks]
    plain = httpx.post(base_url + "/v1/completions", json={**payload, "stream": False}, timeout=120)
    assert plain.status_code == 200
    assert "".join(texts) == plain.json()["choices"][0]["text"]
