"""Structured output that finishes, on the real default model, through the official SDKs (strict validation).

A JSON schema bounds values, not how long their text is; a small model inside a number keeps choosing ``0`` until
``max_tokens``. The JSON limits (``localai.constraints.limits``) bound digits and whitespace where the schema is
silent; these tests pin what a client sees: the extraction finishes and parses, a runaway number stops at the
documented bounds, the request and YAML knobs move them, the schema's own bounds win, and a cut answer's field is
named in the log. A logit bias towards one digit makes the runaway deterministic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
from localai.testing import GGUF_NAME, ServerProcess, write_models
from openai import BadRequestError, OpenAI
from pydantic import BaseModel

MODELS = {
    "gemma.yaml": f"name: gemma\nbackend: llama-cpp\ncontext_size: 2048\nparameters:\n  model: {GGUF_NAME}\n"
                  "  temperature: 0\n",
    "gemma-tight.yaml": f"name: gemma-tight\nbackend: llama-cpp\ncontext_size: 2048\nparameters:\n"
                        f"  model: {GGUF_NAME}\n  temperature: 0\n"
                        "json_limits:\n  max_integer_digits: 3\n  max_fraction_digits: 2\n",
}
NUMBER = {"type": "object", "properties": {"value": {"type": "number"}}, "required": ["value"],
          "additionalProperties": False}
OFF = {"whitespace": "flexible", "max_integer_digits": 0, "max_fraction_digits": 0, "max_exponent_digits": 0, "max_depth": 0}


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(write_models(tmp_path_factory.mktemp("models"), MODELS)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=300, _strict_response_validation=True)


@pytest.fixture(scope="module")
def token(server: ServerProcess):
    def token_of(d: str) -> int:
        tokens = httpx.post(server.url + "/v1/tokenize", json={"model": "gemma", "content": d}, timeout=60).json()["tokens"]
        assert len(tokens) == 1, tokens
        return tokens[0]
    return token_of


def parts(number_text: str) -> tuple[int, int, int]:
    """Digits of the integer part, the fraction and the exponent of a JSON number as written."""
    m = re.fullmatch(r"-?(\d+)(?:\.(\d+))?(?:[eE][+-]?(\d+))?", number_text)
    assert m, number_text
    return tuple(len(g or "") for g in m.groups())  # type: ignore[return-value]


def written_value(content: str) -> str:
    """The raw text of ``value`` in ``{"value": ...}`` (json.loads would round it)."""
    m = re.fullmatch(r'\{\s*"value"\s*:\s*([^\s}]+)\s*\}', content)
    assert m, content
    return m.group(1)


def runaway(client: OpenAI, favoured: int, *, model: str = "gemma", schema: dict = NUMBER, limits: dict | None = None,
            max_tokens: int = 80):
    extra: dict = {"json_limits": limits} if limits is not None else {}
    return client.chat.completions.create(
        model=model, max_tokens=max_tokens, messages=[{"role": "user", "content": "Write a number."}],
        logit_bias={str(favoured): 40},  # the model wants this token, always
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}, extra_body=extra)


def test_extraction_finishes_through_chat_parse(client: OpenAI) -> None:
    """The issue's case: this answered ``"age": 4200000000…`` until max_tokens."""
    r = client.chat.completions.parse(model="gemma", max_tokens=48, response_format=Person,
                                      messages=[{"role": "user", "content": "Extract: Bob is 42 years old."}])
    choice = r.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    assert choice.message.parsed == Person(name="Bob", age=42)
    assert choice.message.content == '{"name": "Bob", "age": 42}'  # json.dumps' spacing, nothing else


def test_extraction_finishes_through_responses_parse_and_stream(client: OpenAI) -> None:
    r = client.responses.parse(model="gemma", max_output_tokens=48, text_format=Person,
                               input=[{"role": "user", "content": "Extract: Bob is 42 years old."}])
    assert r.status == "completed" and r.output_parsed == Person(name="Bob", age=42)
    with client.responses.stream(model="gemma", max_output_tokens=48, text_format=Person,
                                 input=[{"role": "user", "content": "Extract: Bob is 42 years old."}]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_parsed == Person(name="Bob", age=42)
    assert "".join(deltas) == '{"name": "Bob", "age": 42}'


def test_anthropic_forced_tool_input_finishes(server: ServerProcess) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0, _strict_response_validation=True)
    tool = {"name": "record", "input_schema": Person.model_json_schema()}
    r = client.messages.create(model="gemma", max_tokens=48, tools=[tool], tool_choice={"type": "tool", "name": "record"},
                               messages=[{"role": "user", "content": "Extract: Bob is 42 years old."}])
    assert r.stop_reason == "tool_use"
    Person.model_validate(r.content[-1].input)


def test_a_runaway_number_stops_at_the_documented_bounds(client: OpenAI, token) -> None:
    """Defaults: 16 integer digits, 20 fraction digits, 3 exponent digits; then the answer finishes."""
    r = runaway(client, token("0"))
    content = r.choices[0].message.content or ""
    assert r.choices[0].finish_reason == "stop", content
    i, f, e = parts(written_value(content))
    assert i <= 16 and f <= 20 and e <= 3
    assert f + e > 0  # the bias did push it into a run of zeros (else this test proves nothing)
    # the same request without the limits: the number never ends
    off = runaway(client, token("0"), limits=OFF)
    assert off.choices[0].finish_reason == "length"


def test_request_limits_move_the_bounds(client: OpenAI, token) -> None:
    r = runaway(client, token("7"), limits={"max_integer_digits": 5, "max_fraction_digits": 2})
    content = r.choices[0].message.content or ""
    assert r.choices[0].finish_reason == "stop", content
    i, f, _ = parts(written_value(content))
    assert i == 5 and f <= 2  # "77777": the bias runs the integer part to exactly its bound


def test_model_yaml_limits_apply_and_the_request_goes_over_them(client: OpenAI, token) -> None:
    r = runaway(client, token("7"), model="gemma-tight")
    i, f, _ = parts(written_value(r.choices[0].message.content or ""))
    assert i == 3 and f <= 2
    r = runaway(client, token("7"), model="gemma-tight", limits={"max_integer_digits": 6})
    assert parts(written_value(r.choices[0].message.content or ""))[0] == 6


def test_the_schemas_own_bounds_win(client: OpenAI, token) -> None:
    # 17 digits needed by the schema's minimum: more than the default 16, so the limit steps up for this request
    big = {"type": "object", "properties": {"value": {"type": "integer", "minimum": 10**16, "maximum": 10**17}},
           "required": ["value"], "additionalProperties": False}
    r = runaway(client, token("7"), schema=big)
    content = r.choices[0].message.content or ""
    assert r.choices[0].finish_reason == "stop", content
    assert 10**16 <= json.loads(content)["value"] <= 10**17
    # a maxLength of its own is kept even when the request's string limit is lower
    text = {"type": "object", "properties": {"value": {"type": "string", "maxLength": 30}}, "required": ["value"],
            "additionalProperties": False}
    a = token("a")
    r = client.chat.completions.create(
        model="gemma", max_tokens=60, messages=[{"role": "user", "content": "Say something."}], logit_bias={str(a): 40},
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": text}},
        extra_body={"json_limits": {"max_string_length": 3}})
    assert len(json.loads(r.choices[0].message.content or "")["value"]) == 30
    free = {**text, "properties": {"value": {"type": "string"}}}
    r = client.chat.completions.create(
        model="gemma", max_tokens=60, messages=[{"role": "user", "content": "Say something."}], logit_bias={str(a): 40},
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": free}},
        extra_body={"json_limits": {"max_string_length": 3}})
    assert r.choices[0].finish_reason == "stop" and len(json.loads(r.choices[0].message.content or "")["value"]) == 3


def test_a_cut_answer_names_its_field_and_limits_in_the_log(client: OpenAI, server: ServerProcess, token) -> None:
    r = runaway(client, token("0"), limits=OFF, max_tokens=12)
    assert r.choices[0].finish_reason == "length"
    log = server.log()
    line = next(x for x in reversed(log.splitlines()) if "cut by max_tokens" in x)
    assert "at $.value, inside a number" in line and "integer digits unlimited" in line and "whitespace flexible" in line


def test_json_limits_are_checked_never_ignored(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as info:  # nothing to apply them to
        client.chat.completions.create(model="gemma", max_tokens=2, messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"json_limits": {"max_integer_digits": 4}})
    assert info.value.body["param"] == "json_limits"
    for bad in ({"max_integer_digits": -1}, {"max_digits": 3}, {"whitespace": "pretty"}):
        with pytest.raises(BadRequestError) as info:
            client.chat.completions.create(
                model="gemma", max_tokens=2, messages=[{"role": "user", "content": "hi"}], extra_body={"json_limits": bad},
                response_format={"type": "json_object"})
        assert "json_limits" in str(info.value.body)


def test_models_yaml_with_bad_json_limits_is_reported(tmp_path: Path) -> None:
    from localai.config import parse_yaml_file

    (tmp_path / "m.yaml").write_text("name: m\nparameters:\n  model: x.gguf\njson_limits:\n  whitespace: pretty\n")
    configs, problems = parse_yaml_file(tmp_path / "m.yaml")
    assert not configs and problems and problems[0].field and "json_limits" in problems[0].field
