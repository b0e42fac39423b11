"""The llama-cpp option table: every option and alias, boolean spellings, host:port lists, env precedence, errors."""

from __future__ import annotations

import os
from typing import Any

import pytest
from localai.config import ModelConfig
from localai_llama_cpp.options import OPTIONS, parse


def config(**fields: Any) -> ModelConfig:
    return ModelConfig.model_validate({"name": "m", "parameters": {"model": "m.gguf"}, **fields})


def parsed(entries: list[str], environ: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    return parse(entries, config(**fields), environ=environ or {})


# (entry, key in the parsed settings, value)
CASES = [
    ("use_jinja", "use_jinja", True),
    ("use_jinja:false", "use_jinja", False),
    ("jinja:off", "use_jinja", False),
    ("context_shift", "context_shift", True),
    ("context_shift:on", "context_shift", True),
    ("cache_ram:-1", "cache_ram", -1),
    ("cache_ram:2048", "cache_ram", 2048),
    ("repack:true", "repack", True),
    ("batch_invariant:false", "batch_invariant", False),
    ("deterministic:off", "batch_invariant", False),
    ("swa_full:false", "swa_full", False),
    ("parallel:4", "parallel", 4),
    ("n_parallel:2", "parallel", 2),
    ("grpc_servers:host1:50052,host2:50052", "grpc_servers", ["host1:50052", "host2:50052"]),
    ("rpc_servers: 10.0.0.5:50052 , 10.0.0.6:50053", "grpc_servers", ["10.0.0.5:50052", "10.0.0.6:50053"]),
    ("grpc_servers:[::1]:50052", "grpc_servers", ["[::1]:50052"]),
    ("fit_params:no", "fit_params", False),
    ("fit:yes", "fit_params", True),
    ("fit_params_target:512", "fit_params_target", 512),
    ("fit_target:0", "fit_params_target", 0),
    ("fit_params_min_ctx:2048", "fit_params_min_ctx", 2048),
    ("fit_ctx:1024", "fit_params_min_ctx", 1024),
    ("n_cache_reuse:256", "n_cache_reuse", 256),
    ("cache_reuse:64", "n_cache_reuse", 64),
    ("slot_prompt_similarity:0.5", "slot_prompt_similarity", 0.5),
    ("sps:0", "slot_prompt_similarity", 0.0),
    ("n_batch:128", "n_batch", 128),
    ("batch:64", "n_batch", 64),
    ("queue_size:0", "queue_size", 0),
    ("max_queue:8", "queue_size", 8),
    ("USE_JINJA:TRUE", "use_jinja", True),
]


@pytest.mark.parametrize(("entry", "key", "value"), CASES)
def test_each_option_and_alias(entry: str, key: str, value: Any) -> None:
    assert parsed([entry, *(["batch_invariant:false"] if key == "repack" else [])])[key] == value


def test_repack_with_batch_invariance_on_is_refused_naming_both() -> None:
    with pytest.raises(ValueError, match="option 'repack' needs batch_invariant off"):
        parsed(["repack:true"])


def test_every_documented_option_and_alias_is_covered() -> None:
    names = {entry.partition(":")[0].lower() for entry, _, _ in CASES}
    for spec in OPTIONS:
        for name in (spec.name, *spec.aliases):
            assert name in names, f"{name} has no parsing case"


@pytest.mark.parametrize("spelling", ["true", "1", "yes", "on", "enabled", "TRUE", "On", ""])
def test_true_spellings(spelling: str) -> None:
    entry = f"context_shift:{spelling}" if spelling else "context_shift"
    assert parsed([entry])["context_shift"] is True


@pytest.mark.parametrize("spelling", ["false", "0", "no", "off", "disabled", "OFF"])
def test_false_spellings(spelling: str) -> None:
    assert parsed([f"use_jinja:{spelling}"])["use_jinja"] is False


def test_defaults() -> None:
    got = parsed([])
    assert got == {"use_jinja": True, "context_shift": False, "repack": False, "parallel": 1, "fit_params": True,
                   "fit_params_target": 1024, "fit_params_min_ctx": 4096, "n_cache_reuse": 0,
                   "slot_prompt_similarity": 0.1, "n_batch": 512, "queue_size": 64, "swa_full": True,
                   "batch_invariant": True}


def test_env_applies_when_yaml_is_silent() -> None:
    env = {"LLAMACPP_PARALLEL": "3", "LLAMACPP_GRPC_SERVERS": "a:1,b:2", "LLAMACPP_QUEUE_SIZE": "0"}
    got = parsed([], env)
    assert got["parallel"] == 3
    assert got["grpc_servers"] == ["a:1", "b:2"]
    assert got["queue_size"] == 0


def test_yaml_wins_over_env() -> None:
    env = {"LLAMACPP_PARALLEL": "3", "LLAMACPP_GRPC_SERVERS": "a:1,b:2"}
    got = parsed(["n_parallel:5", "rpc_servers:c:3"], env)
    assert got["parallel"] == 5
    assert got["grpc_servers"] == ["c:3"]


def test_empty_env_is_unset() -> None:
    assert parsed([], {"LLAMACPP_PARALLEL": ""})["parallel"] == 1


def test_bad_env_value_names_option_and_variable() -> None:
    with pytest.raises(ValueError, match=r"'parallel'.*LLAMACPP_PARALLEL.*integer"):
        parsed([], {"LLAMACPP_PARALLEL": "many"})


ERRORS = [
    (["no_such_option"], r"unknown option 'no_such_option'.*known options:.*grpc_servers"),
    (["context_shift:maybe"], r"option 'context_shift'.*boolean"),
    (["parallel:two"], r"option 'parallel'.*integer"),
    (["parallel"], r"option 'parallel'.*needs a value"),
    (["parallel:0"], r"option 'parallel'.*at least 1"),
    (["cache_ram:-2"], r"option 'cache_ram': expected at least -1"),
    (["sps:1.5"], r"option 'sps' \(slot_prompt_similarity\): expected between 0 and 1"),
    (["slot_prompt_similarity:high"], r"option 'slot_prompt_similarity'.*number"),
    (["n_cache_reuse:-1"], r"option 'n_cache_reuse': expected at least 0"),
    (["grpc_servers:host1"], r"option 'grpc_servers'.*host:port.*'host1'"),
    (["grpc_servers:host1:port"], r"option 'grpc_servers'.*host:port"),
    (["grpc_servers:host1:70000"], r"option 'grpc_servers'.*host:port"),
    (["grpc_servers:,"], r"option 'grpc_servers'"),
    (["fit_ctx:0"], r"option 'fit_ctx' \(fit_params_min_ctx\): expected at least 1"),
]


@pytest.mark.parametrize(("entries", "message"), ERRORS)
def test_errors_name_the_option(entries: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parsed(entries)


@pytest.mark.parametrize("cache_type", ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1", "Q8_0"])
def test_cache_types_accepted(cache_type: str) -> None:
    """Accepted, and mapped to the ggml type the loaded library itself calls by that name."""
    from localai_llama_cpp import ggml

    parsed([], cache_type_k=cache_type, cache_type_v=cache_type)
    assert ggml.type_id(cache_type) == ggml.find_type(cache_type.lower())


@pytest.mark.parametrize("field", ["cache_type_k", "cache_type_v"])
def test_unknown_cache_type_lists_the_valid_ones(field: str) -> None:
    with pytest.raises(ValueError, match=rf"{field} 'q3_k' is not supported; use one of f32, f16, bf16, q8_0, q4_0, "
                                         r"q4_1, iq4_nl, q5_0, q5_1"):
        parsed([], **{field: "q3_k"})


@pytest.mark.parametrize("spelling", ["turbo3", "TURBO3_0"])
def test_the_forks_turbo_types_are_refused_naming_the_turboquant_backend(spelling: str) -> None:
    with pytest.raises(ValueError, match="cache_type_k turbo3 is a KV cache type of the llama-cpp-turboquant fork.*backend: turboquant"):
        parsed([], cache_type_k=spelling)


def test_quantized_v_with_flash_attention_off_is_refused() -> None:
    with pytest.raises(ValueError, match="cache_type_v q4_0.*needs flash attention.*off"):
        parsed([], cache_type_v="q4_0", flash_attention="off")
    with pytest.raises(ValueError, match="needs flash attention"):
        parsed([], cache_type_v="q8_0", flash_attention=False)


@pytest.mark.parametrize("fa", ["on", "off", "auto", "ON", True, False, None])
def test_flash_attention_values(fa: Any) -> None:
    """Each spelling parses, and resolves as llama.cpp would: on, or off only when said so (unset/auto: on)."""
    from localai_llama_cpp.params import flash_attention

    parsed([], cache_type_k="q8_0", flash_attention=fa)
    off = fa is False or (isinstance(fa, str) and fa.lower() == "off")
    assert flash_attention(config(cache_type_k="q8_0", flash_attention=fa), None) is (not off)


def test_flash_attention_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="flash_attention 'sometimes': use on, off or auto"):
        parsed([], flash_attention="sometimes")


def test_unknown_option_reported_against_the_model(tmp_path: Any) -> None:
    """The catalog names the model and file next to the option."""
    from localai.registry.backends import Registry
    from localai.registry.catalog import Catalog
    from localai.registry.plugins import make_plugin_manager

    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    (tmp_path / "bad.yaml").write_text("name: broken\nbackend: llama-cpp\noptions: ['sps:lots']\nparameters:\n  model: m.gguf\n")
    catalog = Catalog(tmp_path, Registry(make_plugin_manager())).load()
    entry = catalog.get("broken")
    assert entry is not None and not entry.usable
    assert any("'sps' (slot_prompt_similarity)" in p and "number" in p for p in entry.problems), entry.problems


def test_unset_flash_attention_means_auto_which_is_on() -> None:
    """llama.cpp's and LocalAI's default: flash attention on where the device has it (a quarter of the throughput)."""
    from localai.config import ModelConfig
    from localai_llama_cpp.params import flash_attention

    assert flash_attention(ModelConfig(name="m"), None) is True
    assert flash_attention(ModelConfig(name="m", flash_attention="auto"), "q8_0") is True
    assert flash_attention(ModelConfig(name="m", flash_attention="off"), None) is False
    assert flash_attention(ModelConfig(name="m", flash_attention="on"), "f16") is True


def test_the_ram_prompt_cache_is_on_by_default_within_a_quarter_of_memory() -> None:
    from localai_llama_cpp.options import CACHE_RAM_MIB, default_cache_ram

    total_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    assert "cache_ram" not in parsed([])  # unset: the worker applies the default below
    assert default_cache_ram() == min(CACHE_RAM_MIB, total_mib // 4) > 0
