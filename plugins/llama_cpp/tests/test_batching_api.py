"""``parallel`` over HTTP: batched greedy output equals solo, and a full queue answers in each API's own shape."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from localai.testing import GGUF_NAME, ServerProcess, write_models

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a land far away,"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = write_models(tmp_path_factory.mktemp("batching-models"), {
        "gemma.yaml": f"name: gemma\nbackend: llama-cpp\ncontext_size: 1024\nthreads: 2\n"
                      f"options: ['parallel:3']\nparameters:\n  model: {GGUF_NAME}\n  temperature: 0\n",
    })
    # No wait queue: a request beyond the busy slots is refused at once.
    with ServerProcess(folder, env={"LLAMACPP_QUEUE_SIZE": "0"}) as srv:
        yield srv


def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, _strict_response_validation=True)


def test_batched_greedy_equals_solo_over_http(server: ServerProcess) -> None:
    c = client(server)
    solo = [c.completions.create(model="gemma", prompt=p, max_tokens=20).choices[0].text for p in PROMPTS]
    out: dict[int, str] = {}

    def one(i: int) -> None:
        out[i] = c.completions.create(model="gemma", prompt=PROMPTS[i], max_tokens=20).choices[0].text

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [out[i] for i in range(len(PROMPTS))] == solo
    assert all(solo)


def test_full_queue_is_refused_in_each_api(server: ServerProcess) -> None:
    c = client(server)
    http = httpx.Client(base_url=server.url, timeout=120)
    # end tokens banned: every slot stays busy for its 400 tokens, so the queue is surely full below
    streams = [http.stream("POST", "/v1/completions", json={"model": "gemma", "prompt": p, "max_tokens": 400, "stream": True,
                                                            "ignore_eos": True})
               for p in PROMPTS]
    lines = []  # keep the line iterators alive: dropping one closes its stream
    try:
        for s in streams:
            response = s.__enter__()
            assert response.status_code == 200
            lines.append(response.iter_lines())
            next(lines[-1])  # the first token arrived: this slot is decoding
        with pytest.raises(openai.RateLimitError) as err:
            c.completions.create(model="gemma", prompt="Hello", max_tokens=4)
        assert err.value.status_code == 429 and err.value.response.headers.get("retry-after")
        assert err.value.body["type"] == "rate_limit_error" and err.value.body["code"] == "queue_full"

        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model="gemma", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)

        a = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0, _strict_response_validation=True)
        with pytest.raises(anthropic.APIStatusError) as aerr:
            a.messages.create(model="gemma", max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
        assert aerr.value.status_code == 529
        assert aerr.value.body["error"]["type"] == "overloaded_error"

        r = httpx.post(server.url + "/v1/responses", json={"model": "gemma", "input": "Hi", "max_output_tokens": 16}, timeout=60)
        assert r.status_code == 429 and r.headers.get("retry-after")
        assert r.json()["error"]["type"] == "too_many_requests"

        # Streamed requests are refused before the 200 goes out, with the same status.
        for path, body in [("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]}),
                           ("/v1/messages", {"max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}),
                           ("/v1/responses", {"input": "Hi"})]:
            r = httpx.post(server.url + path, json={"model": "gemma", "stream": True, **body}, timeout=60)
            assert r.status_code == (529 if path == "/v1/messages" else 429), (path, r.text)
            assert "queue is full" in r.text and r.text.count("is busy") == 1
    finally:
        for s in streams:
            s.__exit__(None, None, None)
        http.close()
    # Closing the streams frees the slots (the cancels reach the worker shortly after): the model serves again.
    for _ in range(600):
        try:
            done = c.completions.create(model="gemma", prompt="Hello", max_tokens=4)
            break
        except openai.RateLimitError:
            time.sleep(0.1)
    assert done.choices[0].finish_reason == "length"
