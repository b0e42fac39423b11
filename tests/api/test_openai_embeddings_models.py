"""Embeddings, models and tokenize/detokenize with the official SDK (strict) against the real model."""

from __future__ import annotations

import base64
import math
import struct

import httpx
import pytest
from openai import BadRequestError, NotFoundError, OpenAI


@pytest.fixture(scope="module")
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, timeout=120, _strict_response_validation=True)


def test_base64_embeddings_equal_float(client: OpenAI, base_url: str) -> None:
    """The SDK asks for base64 by default and decodes it itself; its strict mode cannot check that call
    (``Embedding.embedding`` is typed ``List[float]`` and is validated before decoding), so a
    non-strict client makes it, and the raw base64 is decoded here as little-endian float32 too."""
    texts = ["The sea is calm.", "Le chat dort."]
    loose = OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0, timeout=120)
    default = loose.embeddings.create(model="gemma-embed", input=texts)
    floats = client.embeddings.create(model="gemma-embed", input=texts, encoding_format="float")
    raw = httpx.post(base_url + "/v1/embeddings", timeout=60,
                     json={"model": "gemma-embed", "input": texts, "encoding_format": "base64"}).json()
    decoded = [list(struct.unpack(f"<{len(base64.b64decode(d['embedding'])) // 4}f", base64.b64decode(d["embedding"])))
               for d in raw["data"]]
    for got, want in zip(decoded, floats.data):
        assert all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9) for x, y in zip(got, want.embedding))
    assert [d.index for d in default.data] == [0, 1]
    assert default.usage.prompt_tokens == floats.usage.prompt_tokens > 0
    assert default.usage.total_tokens == default.usage.prompt_tokens
    for a, b in zip(default.data, floats.data):
        assert len(a.embedding) == len(b.embedding) == 640
        assert all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7) for x, y in zip(a.embedding, b.embedding))
    assert default.data[0].embedding != default.data[1].embedding


def test_token_input_and_native_dimensions(client: OpenAI) -> None:
    tokens = client.post("/tokenize", body={"model": "gemma-embed", "content": "hello world"}, cast_to=object)["tokens"]
    by_text = client.embeddings.create(model="gemma-embed", input="hello world", encoding_format="float")
    by_tokens = client.embeddings.create(model="gemma-embed", input=tokens, encoding_format="float", dimensions=640)
    assert len(by_tokens.data) == 1
    assert all(math.isclose(x, y, abs_tol=1e-4) for x, y in zip(by_text.data[0].embedding, by_tokens.data[0].embedding))


def test_unsupported_dimensions_and_empty_input_are_400(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as info:
        client.embeddings.create(model="gemma-embed", input="x", dimensions=64)
    assert info.value.body["param"] == "dimensions" and "640" in info.value.body["message"]
    with pytest.raises(BadRequestError):
        client.embeddings.create(model="gemma-embed", input=[])
    with pytest.raises(BadRequestError) as info:
        client.embeddings.create(model="gemma", input="x")  # a chat model was not loaded for embeddings
    assert info.value.body["param"] == "model"


def test_models_list_and_retrieve(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["gemma", "gemma-embed"] or sorted(ids) == ["gemma", "gemma-embed"]
    m = client.models.retrieve("gemma")
    assert (m.id, m.object) == ("gemma", "model") and m.owned_by and m.created > 0
    with pytest.raises(NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.body["code"] == "model_not_found"


def test_tokenize_roundtrip_with_and_without_prefix(base_url: str) -> None:
    for prefix in ("/v1", ""):
        r = httpx.post(f"{base_url}{prefix}/tokenize", json={"model": "gemma", "content": "Hello world"}, timeout=60)
        tokens = r.json()["tokens"]
        assert tokens and all(isinstance(t, int) for t in tokens)
        back = httpx.post(f"{base_url}{prefix}/detokenize", json={"model": "gemma", "tokens": tokens}, timeout=60)
        assert back.json() == {"content": "Hello world"}
    with_bos = httpx.post(f"{base_url}/v1/tokenize", json={"model": "gemma", "content": "Hello world", "add_special": True},
                          timeout=60).json()["tokens"]
    assert with_bos[1:] == tokens and len(with_bos) == len(tokens) + 1
    bad = httpx.post(f"{base_url}/v1/detokenize", json={"model": "gemma", "tokens": [-3]}, timeout=60)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens[0]"
