"""Sampling penalties on the real model: each one changes a greedy run and suppresses repeated tokens.

Regression: the penalty sampler used to be built with the wrong arity for the installed binding, so any
penalty (in the request or the YAML's ``parameters.repeat_penalty``) failed every request with a 500.
"""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from localai.testing import GGUF_NAME, ServerProcess, write_models

# A prompt the base model answers by repeating itself under greedy decoding.
PROMPT = "apple apple apple apple apple apple apple apple"
N = 24


def run(srv: ServerProcess, model: str = "gemma", **extra: object) -> dict:
    r = httpx.post(srv.url + "/v1/completions", timeout=120,
                   json={"model": model, "prompt": PROMPT, "max_tokens": N, "temperature": 0, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def tokens(srv: ServerProcess, text: str) -> list[int]:
    r = httpx.post(srv.url + "/v1/tokenize", json={"model": "gemma", "content": text}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


def most_common_share(srv: ServerProcess, text: str) -> float:
    toks = tokens(srv, text)
    return Counter(toks).most_common(1)[0][1] / max(len(toks), 1)


@pytest.mark.parametrize("field,value", [("presence_penalty", 1.5), ("frequency_penalty", 1.5), ("repeat_penalty", 1.8)])
def test_each_penalty_changes_greedy_output_and_avoids_repeats(llama_server: ServerProcess, field: str, value: float) -> None:
    plain = run(llama_server)["choices"][0]["text"]
    penalised = run(llama_server, **{field: value})
    text = penalised["choices"][0]["text"]
    assert penalised["usage"]["completion_tokens"] >= 1
    assert text != plain, f"{field}={value} left the greedy output unchanged"
    assert "apple apple apple" in plain  # the unpenalised run repeats...
    assert most_common_share(llama_server, text) < most_common_share(llama_server, plain)  # ...the penalised one less


def test_chat_and_streaming_accept_penalties(llama_server: ServerProcess) -> None:
    r = httpx.post(llama_server.url + "/v1/chat/completions", timeout=120, json={
        "model": "gemma", "max_tokens": 4, "presence_penalty": 0.5, "frequency_penalty": 0.5, "repeat_penalty": 1.1,
        "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    with httpx.stream("POST", llama_server.url + "/v1/completions", timeout=120, json={
            "model": "gemma", "prompt": "hi", "max_tokens": 4, "stream": True, "presence_penalty": 0.5}) as s:
        body = s.read().decode()
    assert s.status_code == 200 and '"error"' not in body and body.rstrip().endswith("data: [DONE]")


def test_yaml_repeat_penalty_applies_to_every_request(tmp_path_factory: pytest.TempPathFactory, llama_server: ServerProcess) -> None:
    folder = write_models(tmp_path_factory.mktemp("penalty-models"), {
        "p.yaml": f"name: gemma\nbackend: llama-cpp\ncontext_size: 512\nparameters:\n  model: {GGUF_NAME}\n  temperature: 0\n"
                  "  repeat_penalty: 1.8\n"})
    plain = run(llama_server)["choices"][0]["text"]
    with ServerProcess(folder) as srv:
        configured = run(srv)["choices"][0]["text"]
        assert configured == run(srv, repeat_penalty=1.8)["choices"][0]["text"]  # the YAML default is that penalty
    assert configured != plain


@pytest.mark.parametrize("field,value", [("repeat_penalty", -1), ("repeat_penalty", 0), ("presence_penalty", 2.5),
                                         ("frequency_penalty", -3)])
def test_out_of_range_penalties_are_400_naming_the_field(llama_server: ServerProcess, field: str, value: float) -> None:
    for path, body in [("/v1/completions", {"prompt": "hi"}),
                       ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
                       ("/v1/responses", {"input": "hi"})]:
        r = httpx.post(llama_server.url + path, json={"model": "gemma", "max_tokens": 2, field: value, **body}, timeout=60)
        assert r.status_code == 400, (path, r.text)
        err = r.json()["error"]
        assert field in (err.get("param") or "") + err["message"], (path, err)


def test_ignore_eos_generates_past_the_end_tokens(llama_server: ServerProcess) -> None:
    # A huge bias on Gemma's end tokens (<eos> 1, <end_of_turn> 106) ends the greedy run at once...
    ending = {"1": 100, "106": 100}
    ended = run(llama_server, prompt="Hello", max_tokens=8, logit_bias=ending)
    assert ended["choices"][0]["finish_reason"] == "stop" and ended["usage"]["completion_tokens"] <= 1
    # ...ignore_eos bans every end-of-generation token, overriding the bias, and the run goes to max_tokens.
    forced = run(llama_server, prompt="Hello", max_tokens=8, logit_bias=ending, ignore_eos=True)
    assert forced["choices"][0]["finish_reason"] == "length" and forced["usage"]["completion_tokens"] == 8
    assert forced["choices"][0]["text"].strip()
