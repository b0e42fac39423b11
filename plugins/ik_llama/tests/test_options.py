"""parse_options for ik-llama-cpp: the table, aliases, refusals of options this engine cannot honour."""

from __future__ import annotations

import pytest
from localai.config import ModelConfig
from localai_ik_llama import options, plugin


def parse(options: list[str], **fields: object) -> dict:
    config = ModelConfig(name="m", options=options, **fields)
    return plugin.parse(options, config)


def test_the_core_parses_through_the_declared_parser() -> None:
    from localai.registry.backends import Registry
    from localai.registry.plugins import make_plugin_manager

    registry = Registry(make_plugin_manager())
    backend = registry.resolve("ik_llama")
    assert backend.parse is plugin.parse
    assert registry.parse_options(backend, ["batch:128"], ModelConfig(name="m"))["n_batch"] == 128


def test_defaults() -> None:
    assert parse([]) == {"use_jinja": True, "n_batch": 512, "batch_invariant": True, "prompt_cache": True, "repeat_last_n": 64}


@pytest.mark.parametrize(("entry", "key", "value"), [
    ("use_jinja:false", "use_jinja", False),
    ("jinja:off", "use_jinja", False),
    ("use_jinja", "use_jinja", True),
    ("batch:128", "n_batch", 128),
    ("n_ubatch:256", "n_ubatch", 256),
    ("prompt_cache:disabled", "prompt_cache", False),
    ("penalty_last_n:0", "repeat_last_n", 0),
])
def test_options_and_aliases(entry: str, key: str, value: object) -> None:
    assert parse([entry])[key] == value


@pytest.mark.parametrize("entry", ["parallel:4", "n_parallel:2", "grpc_servers:h:1", "context_shift", "cache_ram:100",
                                   "cache_reuse:256", "sps:0.5"])
def test_llama_cpp_only_options_are_refused_with_the_reason(entry: str) -> None:
    with pytest.raises(ValueError, match="is not supported: .+"):
        parse([entry])


@pytest.mark.parametrize(("entry", "match"), [
    ("bogus:1", "unknown option 'bogus'"),
    ("n_batch:lots", "option 'n_batch'.*integer"),
    ("n_batch:0", "n_batch.*at least 1"),
    ("use_jinja:maybe", "option 'use_jinja'.*boolean"),
])
def test_bad_options_name_the_option(entry: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse([entry])


@pytest.mark.parametrize("kind", ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1", "q6_0", "Q8_KV"])
def test_every_cache_type_is_accepted_for_k(kind: str) -> None:
    """Accepted, and loaded as that type (K as asked, V left at f16, flash attention off as asked)."""
    parse([], cache_type_k=kind, flash_attention="off")
    assert options.plan_kv(kind, None, "off", vnni=True) == (kind.lower(), "f16", False)


@pytest.mark.parametrize("kind", ["f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q6_0"])
def test_v_cache_types_this_fork_can_hold(kind: str) -> None:
    parse([], cache_type_v=kind)
    k, v, fa = options.plan_kv(None, kind, None, vnni=True)
    assert v == kind.lower() and (fa or kind.lower() in options.V_WITHOUT_FA)  # a quantized V cache turns it on


@pytest.mark.parametrize("kind", ["f32", "q5_0", "q5_1", "q8_kv"])
def test_v_cache_types_the_fork_cannot_hold_are_refused(kind: str) -> None:
    with pytest.raises(ValueError, match=f"cache_type_v {kind} is not supported.*q8_0"):
        parse([], cache_type_v=kind)


def test_unknown_cache_type_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="cache_type_k 'q3_k'.*f32, f16, bf16, q8_0"):
        parse([], cache_type_k="q3_k")


def test_quantized_v_cache_refuses_flash_attention_off() -> None:
    with pytest.raises(ValueError, match="needs flash attention"):
        parse([], cache_type_v="q8_0", flash_attention="off")
    parse([], cache_type_v="q8_0", flash_attention="auto")


@pytest.mark.parametrize(("k", "v", "fa", "vnni", "embeddings", "expected"), [
    (None, None, None, True, False, ("f16", "f16", True)),        # auto: on with VNNI
    (None, None, None, False, False, ("f16", "f16", False)),      # auto: off without VNNI
    (None, None, "auto", True, True, ("f16", "f16", False)),      # never for pooled embeddings by default
    ("bf16", None, None, True, False, ("bf16", "f16", False)),    # auto: off for a type its FA lacks
    ("q5_0", "f16", "off", True, False, ("q5_0", "f16", False)),
    ("q8_0", "q8_0", None, False, False, ("q8_0", "q8_0", True)),  # quantized V forces it on
    ("Q4_0", "iq4_nl", "on", False, False, ("q4_0", "iq4_nl", True)),
    (None, None, "off", True, False, ("f16", "f16", False)),
    (None, None, True, False, False, ("f16", "f16", True)),
])
def test_kv_and_flash_attention_plan(k: str | None, v: str | None, fa: object, vnni: bool, embeddings: bool,
                                     expected: tuple[str, str, bool]) -> None:
    assert options.plan_kv(k, v, fa, vnni, embeddings) == expected


@pytest.mark.parametrize(("k", "v", "fa"), [("f32", None, "on"), ("bf16", "q8_0", None), ("q5_1", None, "on")])
def test_flash_attention_with_a_type_it_lacks_is_refused(k: str, v: str | None, fa: str | None) -> None:
    with pytest.raises(ValueError, match=f"flash attention does not support cache type {k}"):
        options.plan_kv(k, v, fa, vnni=True)


def test_f16_false_means_an_f32_k_cache_only() -> None:
    assert options.cache_k(ModelConfig(name="m", f16=False)) == "f32"
    parse([], f16=False, flash_attention="auto")


def test_bad_flash_attention_value() -> None:
    with pytest.raises(ValueError, match="flash_attention 'sometimes'"):
        parse([], flash_attention="sometimes")
