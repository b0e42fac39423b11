"""The llama-cpp backend on the real Gemma 3 270M GGUF, end to end through the server and its worker."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
from localai.testing import ServerProcess, worker_pids

PROMPT = "The three primary colors are"


def complete(srv: ServerProcess, **body: object) -> dict:
    r = httpx.post(srv.url + "/v1/completions", json={"model": "gemma", **body}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def stream_text(srv: ServerProcess, **body: object) -> tuple[str, str | None, list[str]]:
    import json

    pieces: list[str] = []
    finish = None
    with httpx.stream("POST", srv.url + "/v1/completions", json={"model": "gemma", "stream": True, **body}, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choice = json.loads(line[6:])["choices"][0]
            pieces.append(choice["text"])
            finish = choice["finish_reason"] or finish
    return "".join(pieces), finish, pieces


def test_greedy_completion_is_real_text_and_deterministic(llama_server: ServerProcess) -> None:
    a = complete(llama_server, prompt=PROMPT, max_tokens=24, temperature=0)
    b = complete(llama_server, prompt=PROMPT, max_tokens=24, temperature=0)
    text = a["choices"][0]["text"]
    assert text == b["choices"][0]["text"]
    assert all(color in text.lower() for color in ("red", "blue", "yellow"))  # real, sensible text
    assert a["usage"]["completion_tokens"] == 24 and a["choices"][0]["finish_reason"] == "length"
    assert a["usage"]["prompt_tokens"] == 6  # <bos> + 5 tokens


def test_stream_joins_to_the_non_streamed_text(llama_server: ServerProcess) -> None:
    plain = complete(llama_server, prompt=PROMPT, max_tokens=20)["choices"][0]["text"]
    streamed, finish, pieces = stream_text(llama_server, prompt=PROMPT, max_tokens=20)
    assert streamed == plain and finish == "length"
    assert len([p for p in pieces if p]) >= 10  # really token by token


def test_stop_strings_cut_the_text_and_report_stop(llama_server: ServerProcess) -> None:
    full = complete(llama_server, prompt=PROMPT, max_tokens=30)["choices"][0]["text"]
    words = full.split()
    stop = words[3]
    cut = complete(llama_server, prompt=PROMPT, max_tokens=30, stop=[stop, "zzzz"])
    assert cut["choices"][0]["finish_reason"] == "stop"
    assert cut["choices"][0]["text"] == full[: full.index(stop)]
    streamed, finish, _ = stream_text(llama_server, prompt=PROMPT, max_tokens=30, stop=stop)
    assert streamed == cut["choices"][0]["text"] and finish == "stop"


def test_max_tokens_gives_length(llama_server: ServerProcess) -> None:
    r = complete(llama_server, prompt=PROMPT, max_tokens=3)
    assert r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 3


def test_seeded_sampling_reproduces(llama_server: ServerProcess) -> None:
    a = complete(llama_server, prompt=PROMPT, max_tokens=16, temperature=1.0, seed=1234)["choices"][0]["text"]
    b = complete(llama_server, prompt=PROMPT, max_tokens=16, temperature=1.0, seed=1234)["choices"][0]["text"]
    assert a == b


def test_embeddings_fixed_dimension_deterministic_and_normalised(llama_server: ServerProcess) -> None:
    body = {"model": "gemma-embed", "input": ["hello world", "a completely different sentence"]}
    r1 = httpx.post(llama_server.url + "/v1/embeddings", json=body, timeout=60)
    r2 = httpx.post(llama_server.url + "/v1/embeddings", json=body, timeout=60)
    v1 = [d["embedding"] for d in r1.json()["data"]]
    v2 = [d["embedding"] for d in r2.json()["data"]]
    assert v1 == v2
    assert len(v1[0]) == len(v1[1]) == 640  # Gemma 3 270M's hidden size
    assert abs(sum(x * x for x in v1[0]) - 1.0) < 1e-3
    assert v1[0] != v1[1]


def test_chat_prompt_uses_gemma_turn_format(llama_server: ServerProcess) -> None:
    """The GGUF carries no chat template: the built-in Gemma turn format is used, not a llama-2 fallback.

    Checked by token count: the chat's prompt_tokens equal the tokens of the Gemma-formatted prompt.
    """
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a color."}]
    r = httpx.post(llama_server.url + "/v1/chat/completions", timeout=120,
                   json={"model": "gemma", "max_tokens": 8, "messages": messages})
    assert r.status_code == 200, r.text
    gemma = "<start_of_turn>user\nBe brief.\n\nName a color.<end_of_turn>\n<start_of_turn>model\n"
    tokens = httpx.post(llama_server.url + "/v1/tokenize", json={"model": "gemma", "content": gemma, "add_special": True},
                        timeout=60).json()["tokens"]
    assert tokens[:2] == [2, 105]  # <bos> <start_of_turn>: special tokens parsed as such
    assert r.json()["usage"]["prompt_tokens"] == len(tokens)
    content = r.json()["choices"][0]["message"]["content"]
    assert "<start_of_turn>" not in content and "<end_of_turn>" not in content


def test_prompt_longer_than_context_is_a_400(llama_server: ServerProcess) -> None:
    r = httpx.post(llama_server.url + "/v1/completions", json={"model": "gemma", "prompt": "word " * 3000}, timeout=60)
    assert r.status_code == 400 and "context size" in r.json()["error"]["message"]


def test_sigkill_mid_request_gives_a_clear_error_and_the_next_request_succeeds(llama_server: ServerProcess) -> None:
    complete(llama_server, prompt="warm", max_tokens=1)
    result: dict[str, httpx.Response] = {}

    def long_request() -> None:
        result["r"] = httpx.post(llama_server.url + "/v1/completions", timeout=120,
                                 json={"model": "gemma", "prompt": PROMPT, "max_tokens": 900, "temperature": 1.0, "seed": 5})

    t = threading.Thread(target=long_request)
    t.start()
    time.sleep(1.5)
    workers = [p for p in worker_pids(llama_server.proc.pid)  # type: ignore[union-attr]
               if b"LOCALAI_WORKER_MODEL=gemma\x00" in Path(f"/proc/{p}/environ").read_bytes()]
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGKILL)
    t.join(60)
    r = result["r"]
    assert r.status_code == 500
    assert "'gemma'" in r.json()["error"]["message"] and "SIGKILL" in r.json()["error"]["message"]
    again = complete(llama_server, prompt=PROMPT, max_tokens=5)
    assert again["choices"][0]["text"].strip()


def test_token_ids_outside_the_vocabulary_are_a_400_not_a_dead_worker(llama_server: ServerProcess) -> None:
    for path, body in [("/v1/detokenize", {"model": "gemma", "tokens": [2, 99999999]}),
                       ("/v1/completions", {"model": "gemma", "prompt": [2, 300000], "max_tokens": 2}),
                       ("/v1/embeddings", {"model": "gemma-embed", "input": [[2, 10**9]]})]:
        r = httpx.post(llama_server.url + path, json=body, timeout=60)
        assert r.status_code == 400, (path, r.text)
        assert "out of range" in r.json()["error"]["message"]
    assert complete(llama_server, prompt=[2, 818, 5279], max_tokens=2)["usage"]["prompt_tokens"] == 3


def test_abandoned_plain_request_frees_the_model(llama_server: ServerProcess) -> None:
    """The issue's repro: a plain request whose client times out stops decoding; the next one is not stuck behind it."""
    import pytest

    complete(llama_server, prompt="hi", max_tokens=2)  # warm
    started = time.monotonic()  # this machine's decode speed, to size the bound below
    assert complete(llama_server, prompt="Once upon a time", max_tokens=64, ignore_eos=True)["usage"]["completion_tokens"] == 64
    per_token = (time.monotonic() - started) / 64
    with pytest.raises(httpx.TimeoutException):
        httpx.post(llama_server.url + "/v1/completions", timeout=2.0, json={
            "model": "gemma", "prompt": "Once upon a time", "max_tokens": 2000, "logit_bias": {"1": -100, "106": -100}})
    start = time.monotonic()
    assert complete(llama_server, prompt="hi", max_tokens=2)["usage"]["completion_tokens"] == 2
    # Had the abandoned request gone on decoding, this one would wait for most of its 2000 tokens.
    waited, rest = time.monotonic() - start, (2000 - 2.0 / per_token) * per_token
    assert waited < rest / 4, f"waited {waited:.1f}s; the abandoned request's remaining tokens take about {rest:.0f}s"
    assert "cancelled: its client went away" in llama_server.log()
