"""The vLLM backend on the real Gemma 3 270M (HF folder) and MiniLM, through the server and its worker.

In the default tier: one server for the module, so one engine start per model (Gemma, MiniLM, the tiny Gemma vision
model) serves every check, the three started side by side by ``--preload-models`` (the module: about 4 minutes on
2 cores, against 6 with one start after another); the conformance class, which starts several engines, is the
slow tier's."""

from __future__ import annotations

import json
import math
import threading
import time

import anthropic
import httpx
import jsonschema
import openai
import pytest
from localai.testing import ServerProcess
from localai.testing.conformance.vision import NOISE, NOISE_2, NOISE_3, QUESTION, RED, SMALL_BLUE, chat

PROMPT = "The three primary colors are"
LIMIT = {"type": "object", "properties": {"query": {"type": "string", "maxLength": 20},
                                          "limit": {"type": "integer", "minimum": 1, "maximum": 10}},
         "required": ["query", "limit"], "additionalProperties": False}


@pytest.fixture(scope="module")
def client(vllm_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=vllm_server.url + "/v1", api_key="x", max_retries=0, timeout=600,
                         _strict_response_validation=True)


def complete(srv: ServerProcess, **body: object) -> dict:
    r = httpx.post(srv.url + "/v1/completions", json={"model": "gv", **body}, timeout=600)
    assert r.status_code == 200, r.text
    return r.json()


def test_greedy_is_real_text_deterministic_and_honestly_counted(vllm_server: ServerProcess) -> None:
    a = complete(vllm_server, prompt=PROMPT, max_tokens=12, temperature=0)
    b = complete(vllm_server, prompt=PROMPT, max_tokens=12, temperature=0)
    text = a["choices"][0]["text"]
    assert text == b["choices"][0]["text"] and "red" in text.lower()
    assert a["usage"]["completion_tokens"] == 12 and a["choices"][0]["finish_reason"] == "length"
    assert a["usage"]["prompt_tokens"] == 6  # <bos> + 5 tokens, as llama-cpp counts the same prompt


def test_stream_equals_plain_and_stop_strings_are_cut(client: openai.OpenAI, vllm_server: ServerProcess) -> None:
    plain = complete(vllm_server, prompt=PROMPT, max_tokens=12)["choices"][0]["text"]
    pieces = [c.choices[0].text for c in openai.OpenAI(base_url=vllm_server.url + "/v1", api_key="x").completions.create(
        model="gv", prompt=PROMPT, max_tokens=12, stream=True) if c.choices]
    assert "".join(pieces) == plain and len([p for p in pieces if p]) >= 5
    stop = plain.split()[2]
    cut = complete(vllm_server, prompt=PROMPT, max_tokens=12, stop=[stop])["choices"][0]
    assert cut["finish_reason"] == "stop" and stop not in cut["text"] and plain.startswith(cut["text"])
    msg = anthropic.Anthropic(base_url=vllm_server.url, api_key="x", _strict_response_validation=True).messages.create(
        model="gv", max_tokens=12, messages=[{"role": "user", "content": "Name a color."}], stop_sequences=["zz-never", "\n"])
    assert msg.stop_reason in ("stop_sequence", "max_tokens", "end_turn")
    if msg.stop_reason == "stop_sequence":
        assert msg.stop_sequence == "\n"


def test_seeds_reproduce_sampled_text(vllm_server: ServerProcess) -> None:
    kw = {"prompt": "Once upon a time", "max_tokens": 10, "temperature": 1.0}
    first = complete(vllm_server, seed=7, **kw)["choices"][0]["text"]
    assert complete(vllm_server, seed=7, **kw)["choices"][0]["text"] == first
    assert {complete(vllm_server, seed=s, **kw)["choices"][0]["text"] for s in (1, 2, 3)} - {first}


def test_logit_bias_and_ignore_eos(vllm_server: ServerProcess) -> None:
    ending = {"1": 100, "106": 100}  # Gemma's <eos> and <end_of_turn>: greedy ends at once
    ended = complete(vllm_server, prompt="Hello", max_tokens=6, temperature=0, logit_bias=ending)
    assert ended["choices"][0]["finish_reason"] == "stop" and ended["usage"]["completion_tokens"] <= 1
    forced = complete(vllm_server, prompt="Hello", max_tokens=6, temperature=0, logit_bias=ending, ignore_eos=True)
    assert forced["choices"][0]["finish_reason"] == "length" and forced["usage"]["completion_tokens"] == 6


def test_logprobs_are_log_probabilities(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="gv", messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
                                       logprobs=True, top_logprobs=2)
    content = r.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and all(lp.logprob <= 0 and len(lp.top_logprobs) == 2 for lp in content)
    assert all(math.isclose(lp.logprob, lp.top_logprobs[0].logprob, abs_tol=1e-4) for lp in content)  # greedy


def test_json_schema_and_forced_tool_call_hold_the_schema(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="gv", max_tokens=60, messages=[{"role": "user", "content": "Search cats"}],
                                       response_format={"type": "json_schema", "json_schema": {"name": "q", "schema": LIMIT}})
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content or ""), LIMIT)
    tool = {"type": "function", "function": {"name": "search", "parameters": LIMIT}}
    r = client.chat.completions.create(model="gv", max_tokens=60, messages=[{"role": "user", "content": "Search cats"}],
                                       tools=[tool], tool_choice={"type": "function", "function": {"name": "search"}})
    call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "search"
    jsonschema.validate(json.loads(call.function.arguments), LIMIT)


def test_cancelling_a_stream_aborts_it_in_the_engine(vllm_server: ServerProcess) -> None:
    with httpx.stream("POST", vllm_server.url + "/v1/completions", timeout=600, json={
            "model": "gv", "prompt": "Once upon a time", "max_tokens": 500, "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                break
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "aborted in the engine" not in vllm_server.log():
        time.sleep(0.2)
    assert "aborted in the engine after" in vllm_server.log()


def test_eight_concurrent_streams_match_solo(vllm_server: ServerProcess) -> None:
    prompts = [f"Fact number {i} about the sea:" for i in range(8)]
    solo = {p: complete(vllm_server, prompt=p, max_tokens=8)["choices"][0]["text"] for p in prompts}
    got: dict[str, str] = {}

    def run(p: str) -> None:
        pieces = []
        with httpx.stream("POST", vllm_server.url + "/v1/completions", timeout=600,
                          json={"model": "gv", "prompt": p, "max_tokens": 8, "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    pieces.append(json.loads(line[6:])["choices"][0]["text"])
        got[p] = "".join(pieces)

    threads = [threading.Thread(target=run, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == solo


def test_embeddings_match_sentence_transformers(client: openai.OpenAI, st_encode) -> None:  # type: ignore[no-untyped-def]
    texts = ["The cat sat on the mat.", "A quick brown fox.", "Embeddings map text to vectors."]
    got = [d.embedding for d in client.embeddings.create(model="mini", input=texts, encoding_format="float").data]
    want = st_encode(texts)
    assert len(got) == 3 and len(got[0]) == 384
    for g, w in zip(got, want):
        cos = sum(a * b for a, b in zip(g, w)) / math.sqrt(sum(a * a for a in g) * sum(b * b for b in w))
        assert cos > 0.999, cos


def test_tokenize_round_trip_and_responses_api(vllm_server: ServerProcess) -> None:
    toks = httpx.post(vllm_server.url + "/v1/tokenize", json={"model": "gv", "content": "Hello world"}, timeout=600).json()["tokens"]
    text = httpx.post(vllm_server.url + "/v1/detokenize", json={"model": "gv", "tokens": toks}, timeout=600).json()["content"]
    assert text == "Hello world"
    r = httpx.post(vllm_server.url + "/v1/responses", json={"model": "gv", "input": "Hi", "max_output_tokens": 6}, timeout=600)
    assert r.status_code == 200 and r.json()["status"] in ("completed", "incomplete")


def test_unknown_engine_arg_and_missing_model_are_clear(vllm_server: ServerProcess) -> None:
    r = httpx.post(vllm_server.url + "/v1/completions", json={"model": "typo", "prompt": "x", "max_tokens": 1}, timeout=600)
    assert r.status_code == 500
    msg = r.json()["error"]["message"]
    assert "'enable_prefix_cachin' is not a vLLM engine argument" in msg and "enable_prefix_caching" in msg
    r = httpx.post(vllm_server.url + "/v1/completions", json={"model": "gone", "prompt": "x", "max_tokens": 1}, timeout=600)
    assert r.status_code == 500 and "not in the models folder" in r.json()["error"]["message"]


def test_vllm_yaml_fields_are_read_not_warned_about(vllm_server: ServerProcess) -> None:
    """LocalAI's vLLM fields (``enforce_eager``, ``engine_args``) are the backend's own: no "unknown key" warning."""
    log = vllm_server.log(None)
    assert "unknown key 'mystery_knob'" in log  # typo.yaml's: the warning itself works
    for key in ("enforce_eager", "engine_args"):
        assert f"unknown key '{key}'" not in log


# -- images: the tiny Gemma 3 vision model (gvis) --------------------------------------------------------------------

IMAGE_TOKENS = 68  # "\n\n" <start_of_image> + 64 soft tokens + <end_of_image> "\n\n": vLLM expands the placeholder
# token in the ids, so the "\n\n" tokens stand alone (the transformers backend expands the text: its "\n\n" joins the
# turn's "\n", 67)


def ask_image(client: openai.OpenAI, url: str | None, **kw: object) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(model="gvis", messages=chat(url), max_tokens=8, temperature=0, **kw)  # type: ignore[arg-type,return-value]


def test_vision_images_reach_the_model_and_are_counted(client: openai.OpenAI, vllm_server: ServerProcess) -> None:
    red, again = ask_image(client, RED, logprobs=True), ask_image(client, RED, logprobs=True)
    noise = ask_image(client, NOISE, logprobs=True)
    text = red.choices[0].message.content
    assert text and again.choices[0].message.content == text

    def lps(r: openai.types.chat.ChatCompletion) -> list[float]:
        return [t.logprob for t in (r.choices[0].logprobs.content or [])]  # type: ignore[union-attr]

    assert lps(red) == lps(again)
    assert (noise.choices[0].message.content, lps(noise)) != (text, lps(red))
    without = ask_image(client, None)
    assert red.usage.prompt_tokens - without.usage.prompt_tokens == IMAGE_TOKENS  # type: ignore[union-attr]
    assert noise.usage.prompt_tokens == red.usage.prompt_tokens  # type: ignore[union-attr] # resized to 224x224
    counted = anthropic.Anthropic(base_url=vllm_server.url, api_key="x", _strict_response_validation=True).messages.count_tokens(
        model="gvis", messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": RED.split(",", 1)[1]}},
            {"type": "text", "text": QUESTION}]}])
    assert counted.input_tokens == red.usage.prompt_tokens  # type: ignore[union-attr]
    assert "serving it with vLLM's Transformers modeling backend" in vllm_server.log(None)


def test_vision_stream_equals_plain_and_apis_agree(client: openai.OpenAI, vllm_server: ServerProcess) -> None:
    plain = ask_image(client, NOISE).choices[0].message.content
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="gvis", messages=chat(NOISE), max_tokens=8, temperature=0, stream=True) if c.choices)  # type: ignore[arg-type]
    assert plain and streamed == plain
    expected = ask_image(client, RED).choices[0].message.content
    msg = anthropic.Anthropic(base_url=vllm_server.url, api_key="x", _strict_response_validation=True).messages.create(
        model="gvis", max_tokens=8, extra_body={"temperature": 0}, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": RED.split(",", 1)[1]}},
            {"type": "text", "text": QUESTION}]}])
    assert "".join(b.text for b in msg.content if b.type == "text") == expected
    resp = client.responses.create(model="gvis", max_output_tokens=8, temperature=0, store=False, input=[
        {"role": "user", "content": [{"type": "input_image", "image_url": RED, "detail": "auto"},
                                     {"type": "input_text", "text": QUESTION}]}])
    assert resp.output_text == expected


def test_vision_concurrent_images_get_their_solo_answers(client: openai.OpenAI) -> None:
    urls = [RED, NOISE, SMALL_BLUE, NOISE_2]
    solo = [ask_image(client, url).choices[0].message.content for url in urls]
    assert len(set(solo)) > 1, solo
    got: dict[int, str | None] = {}

    def run(i: int) -> None:
        got[i] = ask_image(client, urls[i]).choices[0].message.content

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got.get(i) for i in range(4)] == solo


def test_vision_two_images_in_one_prompt(client: openai.OpenAI) -> None:
    one = client.chat.completions.create(model="gvis", max_tokens=4, temperature=0, messages=chat(NOISE_3))
    two = client.chat.completions.create(model="gvis", max_tokens=4, temperature=0, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": NOISE_3}}, {"type": "image_url", "image_url": {"url": RED}},
        {"type": "text", "text": QUESTION}]}])
    assert two.usage.prompt_tokens - one.usage.prompt_tokens == IMAGE_TOKENS  # type: ignore[union-attr]
