"""The transformers backend on real models (Gemma 3 270M from an HF folder and straight from the GGUF,
all-MiniLM-L6-v2 as sentence-transformers and as a mean-pooled AutoModel), through a real server and the
official SDKs (strict response validation)."""

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

pytestmark = pytest.mark.engine

PROMPT = "The three primary colors are"


def oai(srv: ServerProcess, strict: bool = True) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=300,
                         _strict_response_validation=strict)


def complete(srv: ServerProcess, **kw: object) -> openai.types.Completion:
    # The SDK's legacy Completion type declares finish_reason non-null, but streamed chunks carry null until the
    # last one (as OpenAI's own API sends them): strict validation only for the non-streamed shape.
    client = oai(srv, strict=not kw.get("stream"))
    return client.completions.create(model=kw.pop("model", "gemma"), prompt=kw.pop("prompt", PROMPT), **kw)


# -- causal LM: generation behaviour ----------------------------------------------------------------


def test_greedy_is_deterministic_sensible_and_counts_usage(server: ServerProcess) -> None:
    a = complete(server, max_tokens=12, temperature=0)
    b = complete(server, max_tokens=12, temperature=0)
    text = a.choices[0].text
    assert text == b.choices[0].text and text.strip()
    assert "red" in text.lower()  # real text from the real model
    assert a.choices[0].finish_reason == "length" and a.usage.completion_tokens == 12
    tokens = httpx.post(server.url + "/v1/tokenize", json={"model": "gemma", "content": PROMPT, "add_special": True}).json()["tokens"]
    assert a.usage.prompt_tokens == len(tokens) == 6  # <bos> + 5 tokens, as llama.cpp counts the same GGUF
    back = httpx.post(server.url + "/v1/detokenize", json={"model": "gemma", "tokens": tokens}).json()["content"]
    assert back == PROMPT


def test_stream_is_token_by_token_and_joins_to_the_plain_text(server: ServerProcess) -> None:
    plain = complete(server, max_tokens=10).choices[0].text
    pieces, finish = [], None
    for chunk in complete(server, max_tokens=10, stream=True):
        pieces.append(chunk.choices[0].text)
        finish = chunk.choices[0].finish_reason or finish
    assert "".join(pieces) == plain and finish == "length"
    assert len([p for p in pieces if p]) >= 6


def test_stop_strings_never_reach_the_text(server: ServerProcess) -> None:
    full = complete(server, max_tokens=16).choices[0].text
    stop = full.split()[2]
    cut = complete(server, max_tokens=16, stop=[stop, "zzzz"])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == full[: full.index(stop)] and stop not in cut.choices[0].text
    streamed = "".join(c.choices[0].text for c in complete(server, max_tokens=16, stop=stop, stream=True))
    assert streamed == cut.choices[0].text


def test_seeds_reproduce_and_sampling_settings_change_the_draw(server: ServerProcess) -> None:
    kw = dict(max_tokens=6, temperature=1.0, top_p=0.95)
    a = complete(server, seed=1234, **kw).choices[0].text
    assert complete(server, seed=1234, **kw).choices[0].text == a
    others = {complete(server, seed=s, **kw).choices[0].text for s in (1, 2)}
    assert len(others | {a}) > 1  # seeds matter
    # a huge bias on one token makes it the greedy choice every time
    token = httpx.post(server.url + "/v1/tokenize", json={"model": "gemma", "content": " banana"}).json()["tokens"][-1]
    biased = complete(server, max_tokens=3, temperature=0, logit_bias={str(token): 100}).choices[0].text
    assert biased == " banana banana banana"
    # presence/frequency penalties steer greedy decoding away from its repetition
    looped = complete(server, prompt="one one one one one one", max_tokens=4, temperature=0).choices[0].text
    penalised = complete(server, prompt="one one one one one one", max_tokens=4, temperature=0,
                         frequency_penalty=2.0, presence_penalty=2.0).choices[0].text
    assert looped != penalised


def test_ignore_eos_generates_past_the_end_tokens(server: ServerProcess) -> None:
    ending = {"1": 100, "106": 100}  # Gemma's <eos> and <end_of_turn>: greedy ends at once
    ended = complete(server, prompt="Hello", max_tokens=6, temperature=0, logit_bias=ending).choices[0]
    assert ended.finish_reason == "stop" and ended.text == ""
    forced = complete(server, prompt="Hello", max_tokens=6, temperature=0, logit_bias=ending,
                      extra_body={"ignore_eos": True})
    assert forced.choices[0].finish_reason == "length" and forced.usage.completion_tokens == 6


def test_logprobs_and_top_logprobs(server: ServerProcess) -> None:
    r = complete(server, max_tokens=4, temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    assert lp is not None and len(lp.tokens) == 4 and "".join(lp.tokens) == r.choices[0].text
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert logprob <= 0 and len(top) == 3
        assert max(top.values()) == pytest.approx(logprob)  # greedy picks the most likely token
    chat = oai(server).chat.completions.create(model="gemma", messages=[{"role": "user", "content": "Hi"}], max_tokens=3,
                                               logprobs=True, top_logprobs=2)
    content = chat.choices[0].logprobs.content
    assert content and all(len(t.top_logprobs) == 2 for t in content)


def test_cancelled_stream_frees_the_model_at_once(server: ServerProcess) -> None:
    # parallel: 1, so a request that kept decoding would hold the only row
    with httpx.stream("POST", server.url + "/v1/completions", timeout=300,
                      json={"model": "gemma-serial", "prompt": PROMPT, "max_tokens": 900, "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                break  # leave after the first token: the worker must stop decoding this request
    # if the abandoned request kept decoding its 900 tokens, this one would queue behind it for minutes
    r = httpx.post(server.url + "/v1/completions", json={"model": "gemma-serial", "prompt": PROMPT, "max_tokens": 2},
                   timeout=60)
    assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] == "length"


def test_concurrent_requests_are_all_correct(server: ServerProcess) -> None:
    prompts = [PROMPT, "Paris is the capital of", "def fibonacci(n):"]
    expected = [complete(server, prompt=p, max_tokens=6).choices[0].text for p in prompts]
    got: dict[int, str] = {}

    def run(i: int) -> None:
        got[i] = complete(server, prompt=prompts[i], max_tokens=6).choices[0].text

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert [got.get(i) for i in range(3)] == expected


# -- continuous batching (the "gemma" model runs with the default parallel: 8) ------------------------

# Different lengths on purpose: rows join the batch right-aligned and padded; the last prompt (about 600 tokens)
# is past Gemma 3's 512-token sliding window, so its sliding layers are cut while the others' are padded.
BATCH_PROMPTS = [PROMPT, "Paris is the capital of", "def fibonacci(n):", "Once upon a time, in a land far away,",
                 "Water boils at", "My favourite food is pizza because", "In 1492, Columbus",
                 "The quick brown fox jumps over the lazy dog. " * 60]


def plain(srv: ServerProcess, prompt: str, max_tokens: int, model: str = "gemma", **extra: object) -> dict:
    r = httpx.post(srv.url + "/v1/completions", timeout=600,
                   json={"model": model, "prompt": prompt, "max_tokens": max_tokens, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def streamed(srv: ServerProcess, prompt: str, max_tokens: int, model: str = "gemma") -> tuple[str, str]:
    text, reason = [], None
    with httpx.stream("POST", srv.url + "/v1/completions", timeout=600,
                      json={"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": True}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: {"):
                choice = json.loads(line[6:])["choices"][0]
                text.append(choice["text"])
                reason = choice["finish_reason"] or reason
    return "".join(text), reason


def together(*calls: object) -> list[object]:
    """Run the calls at once (each ``(function, args...)``), results in order; any failure fails the test."""
    results: dict[int, object] = {}

    def run(i: int, fn: object, args: tuple) -> None:
        try:
            results[i] = fn(*args)  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c[0], c[1:])) for i, c in enumerate(calls)]  # type: ignore[index]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    out = [results.get(i, TimeoutError("did not finish")) for i in range(len(calls))]
    for item in out:
        if isinstance(item, BaseException):
            raise item
    return out


def test_batched_greedy_output_equals_each_request_alone(server: ServerProcess) -> None:
    lengths = [8, 24, 40, 16, 32, 12, 20, 28]
    solo = [plain(server, p, n)["choices"][0] for p, n in zip(BATCH_PROMPTS, lengths)]
    # every other request streamed: a streamed row and a whole-answer row share the same batch
    calls = [(streamed if i % 2 else plain, server, p, n) for i, (p, n) in enumerate(zip(BATCH_PROMPTS, lengths))]
    got = together(*calls)
    for i, (alone, batched) in enumerate(zip(solo, got)):
        text, reason = batched if i % 2 else (batched["choices"][0]["text"], batched["choices"][0]["finish_reason"])
        assert (text, reason) == (alone["text"], alone["finish_reason"]), BATCH_PROMPTS[i][:40]
    assert all(c["finish_reason"] == "length" for c in solo)  # each row ran its full length, none cut short


def test_cancelling_one_row_leaves_the_rest_of_the_batch_intact(server: ServerProcess) -> None:
    prompts = BATCH_PROMPTS[:3]
    solo = [plain(server, p, 30)["choices"][0]["text"] for p in prompts]

    def abandon() -> int:
        seen = 0
        with httpx.stream("POST", server.url + "/v1/completions", timeout=600,
                          json={"model": "gemma", "prompt": BATCH_PROMPTS[3], "max_tokens": 900, "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    seen += 1
                    if seen == 3:
                        break  # hang up mid-batch: its row must leave, the others go on
        return seen

    got = together(*[(streamed, server, p, 30) for p in prompts], (abandon,))
    assert [g[0] for g in got[:3]] == solo and got[3] == 3  # type: ignore[index]
    # the abandoned row's 900 tokens are not still decoding: a new request is answered at once
    assert plain(server, PROMPT, 2)["choices"][0]["finish_reason"] == "length"


def test_a_constrained_row_stays_valid_in_a_batch_of_free_ones(server: ServerProcess) -> None:
    prompts = BATCH_PROMPTS[:3]
    solo = [plain(server, p, 20)["choices"][0]["text"] for p in prompts]

    def constrained() -> dict:
        r = oai(server).chat.completions.create(
            model="gemma", messages=[{"role": "user", "content": "Describe a person as JSON."}], max_tokens=40,
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}})
        return {"reason": r.choices[0].finish_reason, "content": r.choices[0].message.content}

    got = together((constrained,), *[(plain, server, p, 20) for p in prompts])
    assert got[0]["reason"] == "stop"  # type: ignore[index]
    jsonschema.validate(json.loads(got[0]["content"]), PERSON)  # type: ignore[index]
    assert [g["choices"][0]["text"] for g in got[1:]] == solo  # type: ignore[index]


def test_parallel_decodes_that_many_at_once_and_queue_size_bounds_the_rest(server: ServerProcess) -> None:
    """``parallel: 2`` serves two open streams at once; with ``queue_size: 0`` a third is refused with 429, as is a
    second on ``parallel: 1``."""
    def hold(model: str) -> tuple[object, object]:
        ctx = httpx.stream("POST", server.url + "/v1/completions", timeout=600,
                           json={"model": model, "prompt": PROMPT, "max_tokens": 400, "stream": True})
        r = ctx.__enter__()
        assert r.status_code == 200
        lines = r.iter_lines()  # kept: a dropped line iterator closes the response (httpx), freeing the row
        while not next(lines).startswith("data: {"):
            pass  # its first token arrived: the request holds a row
        return ctx, lines

    for model, rows in (("gemma-p1", 1), ("gemma-p2", 2)):
        held = [hold(model) for _ in range(rows)]
        try:
            r = httpx.post(server.url + "/v1/completions", timeout=60,
                           json={"model": model, "prompt": PROMPT, "max_tokens": 2})
            assert r.status_code == 429, (model, r.status_code, r.text)
            assert r.json()["error"]["type"] and "Retry-After" in r.headers
        finally:
            for ctx, _ in held:
                ctx.__exit__(None, None, None)  # type: ignore[attr-defined]


# -- chunked prefill ("gemma-chunks": prefill_chunk_size 64; "gemma": the default 512) -------------------------

LONG = "The quick brown fox jumps over the lazy dog. " * 40  # about 400 tokens: 7 chunks of 64, one of 512


def test_a_prompt_evaluated_in_chunks_gets_the_answer_of_the_whole_prompt(server: ServerProcess) -> None:
    """Chunks compute the same function: the greedy text and the first token's logprob of the whole prompt."""
    whole = plain(server, LONG, 12, logprobs=1)["choices"][0]
    chunked = plain(server, LONG, 12, model="gemma-chunks", logprobs=1)["choices"][0]
    assert chunked["text"] == whole["text"] and whole["text"].strip()
    assert chunked["logprobs"]["token_logprobs"][0] == pytest.approx(whole["logprobs"]["token_logprobs"][0], abs=1e-3)


def test_a_long_prompt_joining_does_not_stall_the_running_stream(server: ServerProcess) -> None:
    """While a ~650-token prompt is evaluated (11 chunks of 64), the stream already running keeps getting tokens:
    one step between two chunks. Evaluated whole, the running stream would wait for all of it."""
    arrivals: list[float] = []
    started = threading.Event()

    def running() -> str:
        text = []
        with httpx.stream("POST", server.url + "/v1/completions", timeout=600,
                          json={"model": "gemma-chunks", "prompt": PROMPT, "max_tokens": 120, "stream": True,
                                "ignore_eos": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    arrivals.append(time.monotonic())
                    text.append(json.loads(line[6:])["choices"][0]["text"])
                    if len(arrivals) == 3:
                        started.set()
        return "".join(text)

    def joining() -> tuple[float, float, str]:
        assert started.wait(300)
        sent = time.monotonic()
        first, text = None, []
        with httpx.stream("POST", server.url + "/v1/completions", timeout=600,
                          json={"model": "gemma-chunks", "prompt": LONG + "Once upon a time, " * 40, "max_tokens": 8,
                                "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    first = first or time.monotonic()
                    text.append(json.loads(line[6:])["choices"][0]["text"])
        assert first is not None
        return sent, first, "".join(text)

    solo = plain(server, PROMPT, 120, model="gemma-chunks", ignore_eos=True)["choices"][0]["text"]
    alone = plain(server, LONG + "Once upon a time, " * 40, 8, model="gemma-chunks")["choices"][0]["text"]
    got = together((running,), (joining,))
    sent, first, joined_text = got[1]  # type: ignore[misc]
    during = [t for t in arrivals if sent < t < first]
    assert len(during) >= 6, f"the running stream got {len(during)} tokens while the long prompt was evaluated"
    assert got[0] == solo and joined_text == alone  # neither answer changed by sharing the model


# -- constraints --------------------------------------------------------------------------------


PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "adult": {"type": "boolean"}},
          "required": ["name", "adult"], "additionalProperties": False}


def test_json_schema_response_format_is_enforced(server: ServerProcess) -> None:
    r = oai(server).chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Describe a person as JSON."}], max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}})
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), PERSON)


def test_forced_tool_call_is_valid_against_its_schema(server: ServerProcess) -> None:
    params = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"],
              "additionalProperties": False}
    r = oai(server).chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "What is the weather in Paris?"}], max_tokens=60,
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": params}}],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False)
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and calls and calls[0].function.name == "get_weather"
    jsonschema.validate(json.loads(calls[0].function.arguments), params)


# -- the other APIs -----------------------------------------------------------------------------


def test_anthropic_messages_strict(server: ServerProcess) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0, _strict_response_validation=True)
    msg = client.messages.create(model="gemma", max_tokens=5, messages=[{"role": "user", "content": "Say hello"}])
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 5 and msg.content[0].text
    with client.messages.stream(model="gemma", max_tokens=5, messages=[{"role": "user", "content": "Say hello"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == msg.content[0].text and final.stop_reason == "max_tokens"


def test_open_responses_api(server: ServerProcess) -> None:
    r = oai(server).responses.create(model="gemma", input="Say hello", max_output_tokens=5)
    assert r.status == "incomplete" and r.output_text and r.usage.output_tokens == 5


def test_gguf_served_directly_matches_its_hf_folder(server: ServerProcess) -> None:
    """transformers dequantizes the .gguf itself; the HF folder was saved from it, so greedy text agrees."""
    a = complete(server, model="gemma-gguf", max_tokens=6).choices[0].text
    assert a == complete(server, max_tokens=6).choices[0].text


def test_a_gguf_is_converted_once_and_read_from_the_cache_after(server: ServerProcess) -> None:
    """The dequantized checkpoint is cached by the file's content (82 s to convert Gemma 3 270M on 2 cores): a
    reload reads it back, says so in the log, and answers exactly as the GGUF converted on the spot did."""
    first = complete(server, model="gemma-gguf", max_tokens=6).choices[0].text
    reads = server.log(None).count("read from its cached conversion")
    assert httpx.post(server.url + "/backend/shutdown", json={"model": "gemma-gguf"}, timeout=60).status_code == 200
    again = complete(server, model="gemma-gguf", max_tokens=6).choices[0].text
    log = server.log(None)
    assert log.count("read from its cached conversion") == reads + 1, log[-3000:]
    assert again == first


# -- embeddings ---------------------------------------------------------------------------------

SENTENCES = ["A man is eating food.", "A cat sleeps on the sofa.", "The stock market fell sharply today."]


@pytest.mark.parametrize("model", ["minilm", "minilm-pooled"])
def test_embeddings_equal_direct_sentence_transformers(server: ServerProcess, st_encode, model: str) -> None:
    r = oai(server).embeddings.create(model=model, input=SENTENCES, encoding_format="float")
    vectors = [d.embedding for d in r.data]
    reference = st_encode(SENTENCES)
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    for v, ref in zip(vectors, reference):
        assert math.isclose(math.fsum(x * x for x in v), 1.0, abs_tol=1e-5)
        assert max(abs(a - b) for a, b in zip(v, ref)) < 1e-5
    assert r.usage.prompt_tokens > 3 * 5
    # Alone rather than in a padded batch of three: CPUs with AVX-512/AMX kernels differ in the last bits (~1e-7).
    alone = oai(server).embeddings.create(model=model, input=SENTENCES[0], dimensions=384, encoding_format="float")
    assert alone.data[0].embedding == pytest.approx(vectors[0], abs=1e-5)
    with pytest.raises(openai.BadRequestError, match="384"):
        oai(server).embeddings.create(model=model, input=SENTENCES[0], dimensions=128)


def test_embedding_model_refuses_chat(server: ServerProcess) -> None:
    with pytest.raises(openai.BadRequestError, match="does not support"):
        oai(server).chat.completions.create(model="minilm", messages=[{"role": "user", "content": "hi"}])


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "words"), [
    ("bad-type", ["type", "NoSuchModelClass"]),
    ("bad-gpu", ["main_gpu", "cuda.3", "available devices: cpu"]),
    ("bad-quant", ["quantization", "bnb_4bit", "CUDA"]),
    ("missing", ["no-such-folder/sub/model", "does not exist"]),
    ("hub", ["google/gemma-3-270m", "not in the models folder", "hub"]),
    ("vision-gguf", ["AutoModelForImageTextToText", "not a .gguf file", "llama-cpp"]),
    # An OV* type on the plain (CPU) flavour names the flavour to install, the command a user runs, not pip.
    ("ov-on-plain", ["OVModelForCausalLM", "localai backends install openvino-transformers"]),
])
def test_unservable_models_are_refused_clearly(server: ServerProcess, model: str, words: list[str]) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        complete(server, model=model, max_tokens=2)
    assert err.value.status_code == 500 and "Traceback" not in err.value.message
    for word in words:
        assert word in err.value.message
    assert model != "ov-on-plain" or "pip install" not in err.value.message
    assert httpx.get(server.url + "/healthz").status_code == 200  # the server lives on


def test_a_typed_image_text_to_text_model_takes_images_through_its_processor(server: ServerProcess) -> None:
    """``type: AutoModelForImageTextToText`` names the kind (the conformance class finds it by its config); the
    processor expands the image into its 64 soft tokens and resizes any size."""
    from localai.testing.conformance.vision import NOISE_2, RED, chat

    client = oai(server)
    with_image = client.chat.completions.create(model="vision-typed", messages=chat(RED), max_tokens=4, temperature=0)
    tall = client.chat.completions.create(model="vision-typed", messages=chat(NOISE_2), max_tokens=4, temperature=0)
    text = client.chat.completions.create(model="vision-typed", messages=chat(None), max_tokens=4, temperature=0)
    assert with_image.usage.prompt_tokens == tall.usage.prompt_tokens == text.usage.prompt_tokens + 67
    listed = {m.id: (m.model_extra or {}).get("capabilities") for m in client.models.list().data}
    assert "vision" in listed["vision-typed"] and "vision" not in listed["gemma"]
