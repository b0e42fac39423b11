"""Structured output on the real model through the shared constraint engine (llguidance masks in the scheduler).

Pins: the issue's repros (integer bounds loosened, ``maxLength: 65535`` killing the worker) now give valid output
from a live worker; unenforceable keywords are a 400 naming keyword and path; parallel slots each keep their own
constraint; constrained logprobs report the model's own distribution.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from localai.testing import ServerProcess, worker_pids  # noqa: E402
from localai.types import Constraint, GenerateRequest, SamplingParams  # noqa: E402

TOOL_SCHEMA = {"type": "object", "properties": {"query": {"type": "string"},
                                                "limit": {"type": "integer", "minimum": 1, "maximum": 10}},
               "required": ["query", "limit"]}
PROMPT = "<start_of_turn>user\nSearch for {}: give JSON with a query and a very large limit.<end_of_turn>\n<start_of_turn>model\n"


def chat(srv: ServerProcess, **body: Any) -> httpx.Response:
    return httpx.post(srv.url + "/v1/chat/completions", timeout=300,
                      json={"model": "gemma", "messages": [{"role": "user", "content": "x"}], **body})


def gemma_worker(srv: ServerProcess) -> list[int]:
    return [p for p in worker_pids(srv.proc.pid)  # type: ignore[union-attr]
            if b"LOCALAI_WORKER_MODEL=gemma\x00" in Path(f"/proc/{p}/environ").read_bytes()]


def test_max_length_65535_no_longer_kills_the_worker(llama_server: ServerProcess) -> None:
    """The issue's SIGSEGV repro: now a 200 with output that validates, and the same worker keeps serving."""
    chat(llama_server, max_tokens=1)
    before = gemma_worker(llama_server)
    schema = {"type": "object", "properties": {"d": {"type": "string", "maxLength": 65535}}, "required": ["d"]}
    r = chat(llama_server, max_tokens=32, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    if choice["finish_reason"] == "stop":
        jsonschema.validate(json.loads(choice["message"]["content"]), schema)
    assert gemma_worker(llama_server) == before
    assert chat(llama_server, max_tokens=2).status_code == 200


def test_forced_tool_call_and_json_schema_respect_integer_bounds(llama_server: ServerProcess) -> None:
    tool = {"type": "function", "function": {"name": "search", "parameters": TOOL_SCHEMA}}
    for seed in (1, 2, 3):
        r = chat(llama_server, max_tokens=48, temperature=1.0, seed=seed, tools=[tool],
                 tool_choice={"type": "function", "function": {"name": "search"}},
                 messages=[{"role": "user", "content": PROMPT.format("cats")}])
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        if choice["finish_reason"] != "length":
            args = json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"])
            jsonschema.validate(args, TOOL_SCHEMA)
        r = chat(llama_server, max_tokens=48, temperature=1.0, seed=seed,
                 response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": TOOL_SCHEMA}})
        choice = r.json()["choices"][0]
        if choice["finish_reason"] == "stop":
            jsonschema.validate(json.loads(choice["message"]["content"]), TOOL_SCHEMA)


def test_unenforceable_keyword_is_a_400_naming_it(llama_server: ServerProcess) -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}
    r = chat(llama_server, max_tokens=8, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "response_format.json_schema.schema.properties.tags.uniqueItems"
    assert "uniqueItems" in err["message"] and err["code"] == "unsupported_schema"
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "when": {"type": "string", "format": "iri"}}}}}
    r = chat(llama_server, max_tokens=8, tools=[tool], tool_choice="required")
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools[0].parameters.properties.when.format"


@pytest.fixture(scope="module")
def model() -> Any:
    from localai.config import ModelConfig
    from localai.testing import default_gguf
    from localai_llama_cpp.model import LlamaCppModel

    gguf = default_gguf()
    config = ModelConfig.model_validate({"name": "g", "context_size": 1024, "threads": 2, "parameters": {"model": str(gguf)}})
    m = LlamaCppModel.load(config, str(gguf), {"parallel": 3}, "llama-cpp")
    yield m
    m.close()


def run(model: Any, req: GenerateRequest) -> tuple[str, Any]:
    chunks = list(model.generate(req, lambda: False))
    return "".join(c.text for c in chunks), chunks[-1]


def test_parallel_slots_each_enforce_their_own_constraint(model: Any) -> None:
    import threading

    schemas = [TOOL_SCHEMA, {"type": "array", "items": {"type": "integer", "minimum": 5, "maximum": 9}, "minItems": 2, "maxItems": 4},
               {"type": "object", "properties": {"ok": {"type": "boolean"}, "name": {"enum": ["ann", "bob"]}}, "required": ["ok", "name"]}]
    out: list[Any] = [None] * 6

    def go(i: int) -> None:
        req = GenerateRequest(model="g", prompt=PROMPT.format(i), max_tokens=60,
                              constraint=Constraint(type="json_schema", json_schema=schemas[i % 3]),
                              sampling=SamplingParams(temperature=1.0, seed=i))
        out[i] = run(model, req)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for i, (text, last) in enumerate(out):
        if last.finish_reason == "stop":
            jsonschema.validate(json.loads(text), schemas[i % 3])
        else:
            assert last.finish_reason == "length"
    assert sum(last.finish_reason == "stop" for _, last in out) >= 3


def test_constrained_logprobs_are_the_models_own(model: Any) -> None:
    req = GenerateRequest(model="g", prompt="The answer is", max_tokens=3, logprobs=2, sampling=SamplingParams(temperature=0),
                          constraint=Constraint(type="json_schema", json_schema={"enum": ["yes", "no"]}))
    chunks = list(model.generate(req, lambda: False))
    text = "".join(c.text for c in chunks)
    items = [lp for c in chunks for lp in (c.logprobs or [])]
    assert text in ('"yes"', '"no"') and chunks[-1].finish_reason == "stop"
    assert items and all(lp.logprob <= 0 for lp in items)
    assert any(alt[0] != lp.token for lp in items for alt in lp.top)  # alternatives outside the mask are reported


def test_refused_constraint_never_reaches_the_slots(model: Any) -> None:
    bad = GenerateRequest(model="g", prompt="x", max_tokens=4,
                          constraint=Constraint(type="json_schema", json_schema={"type": "array", "uniqueItems": True}))
    with pytest.raises(ValueError, match="uniqueItems"):
        model.generate(bad, lambda: False)
    assert model.scheduler().wait_idle(10)
