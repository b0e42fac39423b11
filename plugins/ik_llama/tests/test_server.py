"""ik-llama-cpp through a real ``localai run`` on Gemma 3 270M, with the official OpenAI SDK as client.

The YAMLs name the backend by its aliases (``ik_llama``, ``ik-llama``) to prove they resolve.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import jsonschema
import openai
import pytest
from localai.testing import GGUF_NAME, ServerProcess, write_models
from localai_ik_llama.options import CHUNK

MODELS = {
    "ik.yaml": f"""
name: ik
backend: ik_llama
context_size: 1024
threads: 2
parameters:
  model: {GGUF_NAME}
  temperature: 0
""",
    "ik-embed.yaml": f"""
name: ik-embed
backend: ik-llama
embeddings: true
context_size: 256
threads: 2
parameters:
  model: {GGUF_NAME}
""",
    "ik-q8.yaml": f"""
name: ik-q8
backend: ik-llama-cpp
context_size: 512
threads: 2
cache_type_k: q8_0
cache_type_v: q8_0
options: ["n_batch:64", "prompt_cache:off"]
parameters:
  model: {GGUF_NAME}
  temperature: 0
""",
    "ik-bad.yaml": f"""
- name: ik-badcache
  backend: ik_llama
  cache_type_k: q3_k
  parameters:
    model: {GGUF_NAME}
- name: ik-parallel
  backend: ik_llama
  options: ["parallel:4"]
  parameters:
    model: {GGUF_NAME}
""",
}

PROMPT = "The three primary colors are"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = write_models(tmp_path_factory.mktemp("ik-models"), MODELS)
    with ServerProcess(folder) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, _strict_response_validation=True)


@pytest.fixture(scope="module")
def lenient(server: ServerProcess) -> openai.OpenAI:
    """For streamed legacy completions only: the SDK's ``CompletionChoice.finish_reason`` is non-null,
    yet every chunk before the last carries ``null`` (as OpenAI's own API sends), so strict validation
    cannot accept any compliant stream. Chat streams are checked strictly below."""
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)


def complete(client: openai.OpenAI, **kw: object) -> openai.types.Completion:
    return client.completions.create(model=kw.pop("model", "ik"), prompt=kw.pop("prompt", PROMPT), **kw)  # type: ignore[arg-type]


def test_streams_token_by_token_and_matches_the_plain_answer(client: openai.OpenAI, lenient: openai.OpenAI) -> None:
    plain = complete(client, max_tokens=12)
    assert plain.choices[0].finish_reason == "length"
    assert plain.usage is not None and plain.usage.completion_tokens == 12

    stream = complete(lenient, max_tokens=12, stream=True, stream_options={"include_usage": True})
    texts, finishes, usage = [], [], None
    for chunk in stream:
        for choice in chunk.choices:
            if choice.text:
                texts.append(choice.text)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
        usage = chunk.usage or usage
    assert len(texts) >= 6, texts  # streamed piece by piece, not in one lump
    assert "".join(texts) == plain.choices[0].text
    assert finishes == ["length"]
    assert usage is not None and usage.completion_tokens == 12


def test_greedy_is_deterministic_and_reuses_the_prompt_cache(client: openai.OpenAI) -> None:
    a = complete(client, max_tokens=8)
    b = complete(client, max_tokens=8)
    assert a.choices[0].text == b.choices[0].text
    assert a.choices[0].text.strip()
    # batch_invariant (the default): a prompt shorter than one fixed chunk is evaluated whole each time, as it was cold
    assert b.usage is not None and b.usage.prompt_tokens_details is not None
    assert b.usage.prompt_tokens_details.cached_tokens == 0
    long = " ".join([PROMPT] * 40)
    c = complete(client, prompt=long, max_tokens=8)
    d = complete(client, prompt=long, max_tokens=8)
    assert c.choices[0].text == d.choices[0].text
    # a long one was in the KV cache: its whole fixed chunks but the last are reused (that one is evaluated as cold)
    assert d.usage is not None and d.usage.prompt_tokens_details is not None and d.usage.prompt_tokens > CHUNK
    assert d.usage.prompt_tokens_details.cached_tokens == (d.usage.prompt_tokens - 1) // CHUNK * CHUNK


def test_stop_string_ends_generation_and_is_not_returned(client: openai.OpenAI, lenient: openai.OpenAI) -> None:
    full = complete(client, max_tokens=24).choices[0].text
    # stop on a word the greedy answer contains, somewhere after its start
    word = next(w for w in full.split()[2:] if w.isalpha())
    cut = complete(client, max_tokens=24, stop=[word, "zzqx"])
    assert cut.choices[0].finish_reason == "stop"
    assert word not in cut.choices[0].text
    assert full.startswith(cut.choices[0].text)
    assert len(cut.choices[0].text) < len(full)

    streamed = "".join(c.choices[0].text for c in complete(lenient, max_tokens=24, stop=[word], stream=True) if c.choices)
    assert streamed == cut.choices[0].text


def test_seed_reproduces_a_sampled_answer(client: openai.OpenAI) -> None:
    kw = {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 1.2}
    first = complete(client, seed=1234, **kw).choices[0].text
    assert complete(client, seed=1234, **kw).choices[0].text == first
    others = {complete(client, seed=s, **kw).choices[0].text for s in (1, 2, 3)}
    assert others - {first}, "different seeds always gave the same sampled text"


def test_sampling_settings_are_accepted(client: openai.OpenAI) -> None:
    r = client.completions.create(model="ik", prompt=PROMPT, max_tokens=8, temperature=0.7, top_p=0.9, seed=5,
                                  presence_penalty=0.5, frequency_penalty=0.5,
                                  extra_body={"top_k": 20, "min_p": 0.1, "repeat_penalty": 1.2})
    assert r.usage is not None and 1 <= r.usage.completion_tokens <= 8


@pytest.mark.parametrize("field,value", [("presence_penalty", 1.5), ("frequency_penalty", 1.5), ("repeat_penalty", 1.8)])
def test_each_penalty_changes_a_repetitive_greedy_run(client: openai.OpenAI, field: str, value: float) -> None:
    """The same fields mean the same thing as on llama-cpp: a penalised greedy run repeats less."""
    kw = {"prompt": "apple apple apple apple apple apple apple apple", "max_tokens": 24, "temperature": 0}
    plain = complete(client, **kw).choices[0].text
    extra = {"extra_body": {field: value}} if field == "repeat_penalty" else {field: value}
    penalised = complete(client, **kw, **extra).choices[0].text
    assert "apple apple apple" in plain and penalised != plain
    assert penalised.count("apple") < plain.count("apple")


def test_chat_uses_the_models_template(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="ik", messages=[{"role": "user", "content": "Name a color."}], max_tokens=16)
    assert r.choices[0].message.content
    assert "<start_of_turn>" not in r.choices[0].message.content
    assert r.usage is not None and r.usage.prompt_tokens > 8  # the turn markers of Gemma's template
    parts = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="ik", messages=[{"role": "user", "content": "Name a color."}], max_tokens=16, stream=True) if c.choices]
    assert "".join(parts) == r.choices[0].message.content


def test_quantized_kv_cache_model_generates_without_prompt_cache(client: openai.OpenAI) -> None:
    for _ in range(2):
        r = complete(client, model="ik-q8", max_tokens=6)
        assert r.choices[0].finish_reason == "length" and r.choices[0].text.strip()
        assert r.usage is not None and r.usage.prompt_tokens_details is not None
        assert r.usage.prompt_tokens_details.cached_tokens == 0  # options: prompt_cache:off


def test_embeddings(client: openai.OpenAI) -> None:
    r = client.embeddings.create(model="ik-embed", input=["a cat sat on the mat", "stock prices fell sharply"],
                                 encoding_format="float")
    a, b = (d.embedding for d in r.data)
    assert len(a) == len(b) == 640
    assert abs(sum(x * x for x in a) - 1.0) < 1e-3
    assert a != b
    again = client.embeddings.create(model="ik-embed", input="a cat sat on the mat",
                               encoding_format="float").data[0].embedding
    assert max(abs(x - y) for x, y in zip(a, again)) < 1e-4
    assert r.usage.prompt_tokens > 8


def test_tokenize_round_trip(server: ServerProcess) -> None:
    tokens = httpx.post(server.url + "/tokenize", json={"model": "ik", "content": "Hello world"}).json()["tokens"]
    assert tokens and all(isinstance(t, int) for t in tokens)
    text = httpx.post(server.url + "/detokenize", json={"model": "ik", "tokens": tokens}).json()["content"]
    assert text.strip() == "Hello world"


def test_generation_model_refuses_embeddings(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        client.embeddings.create(model="ik", input="hello")
    assert err.value.status_code in (400, 404) and "embedding" in str(err.value.message).lower()


def test_prompt_longer_than_context_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="context size of 512"):
        complete(client, model="ik-q8", prompt="word " * 700, max_tokens=4)


@pytest.mark.parametrize(("model", "match"), [("ik-badcache", "q3_k.*f32, f16"), ("ik-parallel", "parallel.*not supported")])
def test_bad_configs_are_reported_by_name(server: ServerProcess, model: str, match: str) -> None:
    # a fresh connection pool: the server closes a connection after a 500 from its catch-all handler
    fresh = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, _strict_response_validation=True)
    with pytest.raises(openai.APIStatusError, match=match):
        complete(fresh, model=model, max_tokens=4)


def test_logprobs(client: openai.OpenAI) -> None:
    r = complete(client, max_tokens=4, logprobs=2)
    lp = r.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert "".join(lp.tokens) == r.choices[0].text
    assert all(x is not None and x <= 0 for x in lp.token_logprobs)
    assert all(len(top) == 2 for top in lp.top_logprobs)


CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                        "country": {"type": "string", "maxLength": 40}},
        "required": ["city", "country"], "additionalProperties": False}
WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"],
           "additionalProperties": False}
ADD = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"],
       "additionalProperties": False}
TOOL_SCHEMAS = {"get_weather": WEATHER, "add": ADD}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city",
                                           "parameters": WEATHER}},
         {"type": "function", "function": {"name": "add", "description": "Add two integers", "parameters": ADD}}]
ASK_CAPITAL = [{"role": "user", "content": "Which city is the capital of France? Answer in JSON."}]


@pytest.mark.parametrize("temperature", [0, 1.0])
def test_response_format_json_schema_is_enforced(client: openai.OpenAI, temperature: float) -> None:
    r = client.chat.completions.create(
        model="ik", messages=ASK_CAPITAL, max_tokens=60, temperature=temperature, seed=7,
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": CITY, "strict": True}})
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content or ""), CITY)


def test_response_format_json_object_streams_valid_json(client: openai.OpenAI) -> None:
    # Greedy, with room to finish: a base model may ramble inside one string value for a while.
    chunks = [c for c in client.chat.completions.create(
        model="ik", messages=[{"role": "user", "content": "Reply with {\"ok\": true}"}],
        max_tokens=300, temperature=0, frequency_penalty=1.0, stream=True, response_format={"type": "json_object"}) if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop", text
    assert isinstance(json.loads(text), dict)


def test_forced_tool_call_with_two_tools_satisfies_the_schema(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="ik", messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                                       tools=TOOLS, tool_choice="required", max_tokens=60)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls and not choice.message.content
    for call in choice.message.tool_calls:
        assert call.type == "function" and call.function.name in TOOL_SCHEMAS
        jsonschema.validate(json.loads(call.function.arguments), TOOL_SCHEMAS[call.function.name])


def test_named_tool_call(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="ik", messages=[{"role": "user", "content": "What is 2 plus 3?"}], tools=TOOLS,
                                       tool_choice={"type": "function", "function": {"name": "add"}}, max_tokens=60)
    calls = r.choices[0].message.tool_calls
    assert calls and [c.function.name for c in calls] == ["add"]
    jsonschema.validate(json.loads(calls[0].function.arguments), ADD)


def test_unconstrained_requests_are_unchanged_by_constrained_ones(client: openai.OpenAI) -> None:
    ask = {"model": "ik", "messages": [{"role": "user", "content": "Name a color."}], "max_tokens": 16}
    before = client.chat.completions.create(**ask).choices[0].message.content  # type: ignore[call-overload]
    client.chat.completions.create(model="ik", messages=ASK_CAPITAL, max_tokens=40,
                                   response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": CITY}})
    after = client.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert after.choices[0].message.content == before
    assert after.choices[0].message.content and not after.choices[0].message.content.lstrip().startswith("{")
