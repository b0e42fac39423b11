"""turboquant on the real model: stock llama.cpp with a q8_0 KV cache, and clear errors for turbo types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from localai.config import ModelConfig
from localai.testing import GGUF_NAME, ServerProcess, write_models
from localai.testing.fixtures import openai_client_fixture
from localai_turboquant.options import parse

PROMPT = "The three primary colors are"


def yaml(name: str, backend: str, extra: str = "") -> str:
    return (f"name: {name}\nbackend: {backend}\ncontext_size: 512\nthreads: 1\n"
            f"parameters:\n  model: {GGUF_NAME}\n  temperature: 0\n{extra}")


def stock_lib() -> str:
    from localai_llama_cpp.ggml import lib_dir

    return str(lib_dir())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    q8 = "cache_type_k: q8_0\ncache_type_v: q8_0\n"
    folder = write_models(tmp_path_factory.mktemp("turbo-models"), {
        "tq.yaml": yaml("tq-q8", "turboquant", q8),
        "llama.yaml": yaml("llama-q8", "llama-cpp", q8),
        "turbo.yaml": yaml("tq-turbo3", "turboquant", "cache_type_k: turbo3\ncache_type_v: turbo3\n"),
        "stock.yaml": yaml("tq-turbo4-stock-lib", "turboquant", f"cache_type_v: turbo4\noptions: ['lib_path:{stock_lib()}']\n"),
    })
    with ServerProcess(folder, env={"TURBOQUANT_LIB_PATH": ""}) as srv:
        yield srv


client = openai_client_fixture()


def complete(client: openai.OpenAI, model: str) -> str:
    return client.completions.create(model=model, prompt=PROMPT, max_tokens=12, temperature=0).choices[0].text


def test_q8_kv_cache_runs_on_stock_llama_cpp(client: openai.OpenAI) -> None:
    text = complete(client, "tq-q8")
    assert text.strip()
    assert text == complete(client, "llama-q8")  # same engine code, same library: same greedy output


def test_turbo_type_without_the_fork_says_what_it_needs(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        complete(client, "tq-turbo3")
    message = err.value.message
    assert "cache_type_k turbo3" in message and "turboquant fork" in message
    assert "lib_path" in message and "TURBOQUANT_LIB_PATH" in message


def test_turbo_type_on_a_stock_library_is_refused_at_load(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        complete(client, "tq-turbo4-stock-lib")
    assert "is not a turboquant build" in err.value.message and "TURBOQUANT_LIB_PATH" in err.value.message


def config(**fields: object) -> ModelConfig:
    return ModelConfig.model_validate({"name": "m", "backend": "turboquant", "parameters": {"model": "m.gguf"}, **fields})


def test_turbo_types_accepted_with_a_library(tmp_path: Path) -> None:
    (tmp_path / "libllama.so").write_bytes(b"")
    parsed = parse([f"lib_path:{tmp_path}"], config(cache_type_k="turbo2", cache_type_v="turbo4"))
    assert parsed["lib_path"] == str(tmp_path.resolve())


def test_turbo_with_flash_attention_off_is_refused(tmp_path: Path) -> None:
    (tmp_path / "libllama.so").write_bytes(b"")
    with pytest.raises(ValueError, match="needs flash attention"):
        parse([f"lib_path:{tmp_path}"], config(cache_type_k="turbo3", flash_attention="off"))


def test_lib_path_must_hold_libllama(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no libllama"):
        parse([f"turboquant_lib:{tmp_path}"], config())
    with pytest.raises(ValueError, match="is not a folder"):
        parse([f"lib_path:{tmp_path / 'missing'}"], config())


def test_unknown_cache_type_lists_turbo_types() -> None:
    with pytest.raises(ValueError, match="q5_1, turbo2, turbo3, turbo4"):
        parse([], config(cache_type_k="turbo9"))


def test_llama_cpp_options_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMACPP_PARALLEL", "2")
    monkeypatch.delenv("TURBOQUANT_LIB_PATH", raising=False)
    parsed = parse(["rpc_servers:h:1", "sps:0.5"], config(cache_type_k="q8_0"))
    assert parsed["parallel"] == 2 and parsed["grpc_servers"] == ["h:1"] and parsed["slot_prompt_similarity"] == 0.5
