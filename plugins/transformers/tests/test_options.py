"""Config checks the transformers backend makes in the server process, before any engine loads (no torch here)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from localai.config import ModelConfig
from localai_transformers.options import device_kind, model_type, parse


def cfg(**fields: object) -> ModelConfig:
    return ModelConfig.model_validate({"name": "m", "backend": "transformers", "parameters": {"model": "x"}, **fields})


def test_type_spellings_and_sentence_transformers_aliases() -> None:
    assert model_type(cfg()) is None
    assert model_type(cfg(type="autoModelForCausalLM")) == "AutoModelForCausalLM"
    assert model_type(cfg(type="sentencetransformers")) == "SentenceTransformer"
    for backend in ("sentencetransformers", "huggingface-embeddings", "sentence_transformers"):
        assert model_type(cfg(backend=backend)) == "SentenceTransformer"
    assert model_type(cfg(type="OVModelForCausalLM")) == "OVModelForCausalLM"


@pytest.mark.parametrize(("fields", "words"), [
    ({"type": "not a class"}, ["type", "not a class"]),
    ({"main_gpu": "tpu9"}, ["main_gpu", "tpu9"]),
    ({"main_gpu": "GPU.1"}, ["main_gpu", "OpenVINO", "OVModelForCausalLM"]),
    ({"quantization": "gptq"}, ["quantization", "gptq", "bnb_4bit"]),
    ({"quantization": "bnb_8bit", "type": "SentenceTransformer"}, ["quantization", "SentenceTransformer"]),
])
def test_bad_fields_are_refused_naming_the_field(fields: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        parse([], cfg(**fields), environ={})
    for word in words:
        assert word in str(err.value)


def test_valid_devices_and_options() -> None:
    assert [device_kind(v) for v in (None, "cuda", "cuda.1", 0, "CPU", "GPU.0", "AUTO:-CPU", "HETERO:GPU,CPU")] == \
        [None, "cuda", "cuda", "cuda", "cpu", "openvino", "openvino", "openvino"]
    parsed = parse(["queue_size:2", "pooling:cls"], cfg(main_gpu="cuda.0", quantization="bnb_4bit"), environ={})
    assert parsed["queue_size"] == 2 and parsed["pooling"] == "cls"
    assert parse([], cfg(), environ={"TRANSFORMERS_QUEUE_SIZE": "5"})["queue_size"] == 5
    # parallel: LocalAI's name for the batch limit, llama-cpp's alias n_parallel too; at least one row
    assert parse([], cfg(), environ={})["parallel"] == 8
    assert parse(["n_parallel:3"], cfg(), environ={})["parallel"] == 3
    assert parse([], cfg(), environ={"TRANSFORMERS_PARALLEL": "2"})["parallel"] == 2
    with pytest.raises(ValueError, match="parallel"):
        parse(["parallel:0"], cfg(), environ={})
    assert parse([], cfg(), environ={})["gguf_cache"] is True
    assert parse(["gguf_cache:false"], cfg(), environ={})["gguf_cache"] is False
    assert parse([], cfg(), environ={"TRANSFORMERS_GGUF_CACHE": "0"})["gguf_cache"] is False
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        parse(["bogus:1"], cfg(), environ={})


def test_registration_never_imports_the_engine() -> None:
    code = ("import sys; from localai.registry.plugins import make_plugin_manager; from localai.registry.backends import Registry; "
            "r = Registry(make_plugin_manager()); b = r.resolve('huggingface-embeddings'); "
            "assert b.name == 'transformers', b; "
            "assert not {'torch', 'transformers'} & set(sys.modules), sorted(m for m in sys.modules if m in ('torch', 'transformers'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
