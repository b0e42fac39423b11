"""The ik-llama-cpp option table and config checks that need no engine.

llama-cpp options this engine cannot honour are listed with the reason, so a YAML written for
llama-cpp fails with a clear message instead of being silently ignored.
"""

from __future__ import annotations

from typing import Any

from localai.options import OptionSpec

from localai_ik_llama.cpu import has_vnni

# KV cache types ik_llama.cpp's CPU backend implements, and their ``ggml_type`` ids in this fork.
CACHE_TYPES: dict[str, int] = {
    "f32": 0, "f16": 1, "bf16": 30, "q8_0": 8, "q4_0": 2, "q4_1": 3, "iq4_nl": 20, "q5_0": 6, "q5_1": 7,
    "q6_0": 133, "q8_kv": 151,
}
# Measured on this fork's CPU backend: its flash attention (iqk) aborts the process for K/V types
# outside FA_TYPES; without flash attention the V cache must be f16 or bf16 (f32 fails to allocate).
FA_TYPES = ("f16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q6_0")
V_WITHOUT_FA = ("f16", "bf16")

# ik_llama.cpp's CPU kernels round a row by the batch it is computed in: its matrix products by how many rows share
# the batch below 64 rows (a prompt's last token in a chunk of 63 rows got logits 0.5 away from the same token in a
# chunk of 64 or 512), and its flash attention by the KV length once that passes 768 cells (on a CPU with
# AVX512-VNNI: a 771-token prompt finished from its cached first 707 tokens got logits 0.85 away from the cold
# ones). So batch-invariant prompts are evaluated in chunks of CHUNK tokens at fixed positions (0, CHUNK,
# 2 * CHUNK, ...), and a cached prefix is reused only up to a chunk boundary: every prompt row is then computed in
# the same batch, beside the same rows and over the same KV length, whatever the cache held, whatever the kernels
# round by. 128: chunks of 256 or 512 evaluate a prompt no faster here (655-674 tok/s on 2 cores, 128: 620-642),
# and a cached prefix gives back on average half a chunk.
CHUNK = 128
# A fixed chunk must fit one decode call and one micro-batch.
MIN_BATCH = CHUNK

_NO_BATCHING = "ik-llama-cpp decodes one sequence at a time (use the llama-cpp backend for continuous batching)"
_NO_RPC = "this ik_llama.cpp build has no RPC backend"

OPTIONS: list[OptionSpec] = [
    OptionSpec("use_jinja", "bool", "render chats with the GGUF's own Jinja chat template", default=True, aliases=("jinja",)),
    OptionSpec("n_batch", "int", "prompt tokens evaluated per decode call", default=512, aliases=("batch",), minimum=1),
    OptionSpec("n_ubatch", "int", "physical micro-batch size of one decode (default: n_batch)", aliases=("ubatch",),
               minimum=1),
    OptionSpec("batch_invariant", "bool", "the same greedy answer whatever the prompt cache held: prompts are "
               f"evaluated in chunks of {CHUNK} tokens at fixed positions and a cached prefix is reused up to a chunk "
               "boundary, so every row is computed as it would be cold; off: any common prefix is reused",
               default=True, aliases=("deterministic",)),
    OptionSpec("prompt_cache", "bool", "keep the last prompt's KV cache and only evaluate the new suffix of the next one",
               default=True),
    OptionSpec("repeat_last_n", "int", "how many recent tokens repetition, presence and frequency penalties look at",
               default=64, aliases=("penalty_last_n",), minimum=0),
    OptionSpec("parallel", "int", "sequences decoded together", aliases=("n_parallel",), supported=_NO_BATCHING),
    OptionSpec("grpc_servers", "list", "offload layers to llama.cpp RPC workers", aliases=("rpc_servers",), supported=_NO_RPC),
    OptionSpec("context_shift", "bool", "drop the oldest tokens when the context fills",
               supported="not implemented for ik-llama-cpp; generation stops with finish reason length"),
    OptionSpec("cache_ram", "int", "MiB cap of a host-RAM prompt cache",
               supported="ik-llama-cpp keeps one prompt cache in the KV cache (option prompt_cache)"),
    OptionSpec("n_cache_reuse", "int", "reuse cached KV chunks by shifting", aliases=("cache_reuse",),
               supported="ik-llama-cpp reuses only the common prompt prefix (option prompt_cache)"),
    OptionSpec("slot_prompt_similarity", "float", "prompt similarity needed to reuse a slot", aliases=("sps",),
               supported=_NO_BATCHING),
]


def flash_attention(value: Any) -> bool | None:
    """``on``/``off``/``auto`` (or a YAML bool) as True/False/None."""
    if value is None or (isinstance(value, str) and value.lower() == "auto"):
        return None
    if isinstance(value, str):
        return value.lower() in ("on", "true")
    return bool(value)


def plan_kv(k: str | None, v: str | None, fa: Any, vnni: bool, embeddings: bool = False) -> tuple[str, str, bool]:
    """The K and V cache types and flash attention setting to load with, or a ValueError saying why not.

    ``auto`` turns flash attention on where it is safe and fast: CPUs with AVX-VNNI (the fork's
    FA asserts on long prompts without it), types it implements, and never for pooled embeddings.
    """
    k, v, want = (k or "f16").lower(), (v or "f16").lower(), flash_attention(fa)
    for field, value in (("cache_type_k", k), ("cache_type_v", v)):
        if value not in CACHE_TYPES:
            raise ValueError(f"{field} {value!r} is not supported by ik-llama-cpp; use one of {', '.join(CACHE_TYPES)}")
    needs_fa = v not in V_WITHOUT_FA
    if needs_fa and v not in FA_TYPES:
        raise ValueError(f"cache_type_v {v} is not supported by ik-llama-cpp (V cache: {', '.join(V_WITHOUT_FA + FA_TYPES[1:])})")
    if needs_fa and want is False:
        raise ValueError(f"cache_type_v {v} (a quantized V cache) needs flash attention; remove flash_attention: off")
    fa_ok = k in FA_TYPES and v in FA_TYPES
    if (needs_fa or want) and not fa_ok:
        bad = k if k not in FA_TYPES else v
        raise ValueError(f"ik_llama.cpp's flash attention does not support cache type {bad} "
                         f"(with flash attention use {', '.join(FA_TYPES)})")
    if needs_fa or want is True:
        return k, v, True
    return k, v, want is None and fa_ok and vnni and not embeddings


def check_batches(options: dict[str, Any]) -> None:
    """Batch-invariant prompt reuse evaluates prompts in fixed chunks of CHUNK tokens: each must fit one batch."""
    if not options.get("batch_invariant", True) or not options.get("prompt_cache", True):
        return  # without reuse every prompt is evaluated whole, the same way each time
    for key in ("n_batch", "n_ubatch"):
        value = options.get(key)
        if value is not None and int(value) < MIN_BATCH:
            raise ValueError(f"option {key}:{value} is below {MIN_BATCH}: batch-invariant prompt reuse evaluates prompts "
                             f"in fixed chunks of {CHUNK} tokens; raise it, or set batch_invariant:false or prompt_cache:false")


def validate_config(config: Any) -> None:
    """Config fields this backend must refuse before load (a clear error beats a crash in the engine)."""
    fa = getattr(config, "flash_attention", None)
    if isinstance(fa, str) and fa.lower() not in ("on", "off", "auto", "true", "false"):
        raise ValueError(f"flash_attention {fa!r}: use on, off or auto")
    plan_kv(cache_k(config), getattr(config, "cache_type_v", None), fa, has_vnni(), bool(getattr(config, "embeddings", False)))


def cache_k(config: Any) -> str | None:
    """``cache_type_k``, or f32 for LocalAI's ``f16: false`` (the V cache stays f16: the fork cannot hold f32 values)."""
    return getattr(config, "cache_type_k", None) or ("f32" if getattr(config, "f16", None) is False else None)
