"""Errors in OpenAI's shape: 404/400 through the SDK's exception classes, in-stream errors, API keys (401)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from localai.testing import ServerProcess, worker_pids, write_models
from openai import AuthenticationError, BadRequestError, InternalServerError, NotFoundError, OpenAI

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, timeout=120, _strict_response_validation=True)


def assert_openai_error(body: dict) -> dict:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_unknown_model_is_404_model_not_found(client: OpenAI) -> None:
    for call in (lambda: client.chat.completions.create(model="x", messages=MSG),
                 lambda: client.chat.completions.create(model="x", messages=MSG, stream=True),
                 lambda: client.completions.create(model="x", prompt="hi"),
                 lambda: client.embeddings.create(model="x", input="hi")):
        with pytest.raises(NotFoundError) as info:
            call()
        err = assert_openai_error(info.value.response.json())
        assert err["message"].startswith('model "x" not found')
        assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", "model", "model_not_found")


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", b'{"model": "gemma", "messages": ['),
    ("/chat/completions", b'not json'),
    ("/v1/chat/completions", b'{"model": "gemma"}'),
    ("/v1/chat/completions", b'{"model": "gemma", "messages": "hi"}'),
    ("/v1/chat/completions", b'{"model": "gemma", "messages": [{"role": "user", "content": "x"}], "n": 0}'),
    ("/v1/completions", b'{"model": "gemma", "prompt": "x", "top_p": 7}'),
    ("/v1/embeddings", b'{"model": "gemma-embed", "input": "x", "encoding_format": "hex"}'),
    ("/v1/tokenize", b'{"model": "gemma"}'),
    ("/v1/completions", b'{"model": "gemma", "prompt": [1, -5]}'),
])
def test_malformed_and_invalid_bodies_are_400_in_openai_shape(base_url: str, path: str, body: bytes) -> None:
    r = httpx.post(base_url + path, content=body, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 400, r.text
    err = assert_openai_error(r.json())
    assert err["type"] == "invalid_request_error"


def test_validation_errors_raise_bad_request_in_the_sdk(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as info:
        client.chat.completions.create(model="gemma", messages=MSG, temperature=3)
    assert info.value.body["param"] == "temperature"


def test_prompt_too_long_is_a_400_even_when_streamed(client: OpenAI) -> None:
    too_long = [{"role": "user", "content": "word " * 2100}]  # longer than the 2048-token context
    with pytest.raises(BadRequestError) as info:
        list(client.chat.completions.create(model="gemma", messages=too_long, stream=True))
    assert "context size" in info.value.message


def test_failure_mid_stream_sends_an_error_event_then_done(server: ServerProcess, client: OpenAI) -> None:
    """The worker dies after the 200 went out: an error event, then [DONE], in OpenAI's line format."""
    lines: list[str] = []
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=120,
                      json={"model": "gemma", "messages": MSG, "stream": True, "max_tokens": 1000,
                            "temperature": 1.0, "seed": 3}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line:
                continue
            lines.append(line)
            if len(lines) == 2:  # content is streaming: kill the model's worker
                pids = [p for p in worker_pids(server.proc.pid)  # type: ignore[union-attr]
                        if b"LOCALAI_WORKER_MODEL=gemma\x00" in Path(f"/proc/{p}/environ").read_bytes()]
                os.kill(pids[0], signal.SIGKILL)
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)
    error = json.loads(lines[-2][len("data: "):])["error"]
    assert "SIGKILL" in error["message"] and error["code"] == "worker_died"
    reply = client.chat.completions.create(model="gemma", messages=MSG, max_tokens=3)  # reloaded
    assert reply.choices[0].finish_reason == "length"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second server that requires one of two keys; its only model is a GGUF that cannot load."""
    folder = tmp_path_factory.mktemp("keyed")
    models = write_models(folder / "models", {"broken.yaml": "name: broken\nbackend: llama-cpp\nparameters:\n  model: broken.gguf\n"},
                          link_gguf=False)
    (models / "broken.gguf").write_bytes(b"GGUF but not really a model file")
    with ServerProcess(models, data_path=folder / "data", env={"LOCALAI_API_KEY": "k-one, k-two"}) as srv:
        yield srv.url


def test_api_keys(keyed: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        OpenAI(base_url=keyed + "/v1", api_key="wrong", max_retries=0, _strict_response_validation=True).models.list()
    err = assert_openai_error(info.value.response.json())
    assert err["code"] == "invalid_api_key"
    assert [m.id for m in OpenAI(base_url=keyed + "/v1", api_key="k-two", max_retries=0,
                                 _strict_response_validation=True).models.list()]
    assert httpx.get(keyed + "/models", headers={"x-api-key": "k-one"}).status_code == 200
    assert httpx.get(keyed + "/models").status_code == 401
    assert httpx.post(keyed + "/v1/chat/completions", json={"messages": MSG}).status_code == 401
    assert httpx.get(keyed + "/healthz").status_code == 200
    assert httpx.get(keyed + "/readyz").status_code == 200


def test_a_model_that_fails_to_load_is_a_5xx_naming_it(keyed: str) -> None:
    client = OpenAI(base_url=keyed + "/v1", api_key="k-one", max_retries=0, timeout=120, _strict_response_validation=True)
    with pytest.raises(InternalServerError) as info:
        client.chat.completions.create(model="broken", messages=MSG, max_tokens=2)
    err = assert_openai_error(info.value.response.json())
    assert "broken" in err["message"] and "load" in err["message"]
    assert err["param"] == "model"
