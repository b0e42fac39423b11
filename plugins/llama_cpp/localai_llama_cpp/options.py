"""The llama.cpp option table (``options:`` entries) and the config checks that need no engine.

Runs in the server process: nothing here imports ``llama_cpp``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from localai.options import OptionSpec, parse_option_list

# KV cache types llama.cpp accepts for cache_type_k / cache_type_v (its server's allow-list).
CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
UNQUANTIZED = ("f32", "f16", "bf16")
FORK_TYPES = ("turbo2", "turbo3", "turbo4")  # the llama-cpp-turboquant fork's (backend: turboquant)
FLASH_ATTENTION = {"on": True, "true": True, "yes": True, "enabled": True, "1": True,
                   "off": False, "false": False, "no": False, "disabled": False, "0": False, "auto": None}


def rpc_support() -> str | None:
    """``None`` when the installed llama.cpp build has the RPC backend, else why not (no import)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return "llama-cpp-python is not installed"
    lib = Path(os.environ.get("LLAMA_CPP_LIB_PATH") or Path(next(iter(spec.submodule_search_locations)), "lib"))
    if not any(lib.glob("libggml-rpc.*")) and not any(lib.glob("ggml-rpc.*")):
        return f"this llama.cpp build has no RPC backend ({lib} has no libggml-rpc); rebuild llama-cpp-python with -DGGML_RPC=ON"
    return None


# llama-server's default cap, lowered to a quarter of the machine's memory where that is less (a restored state
# gives the cold answer: its sliding-window cells are checked at restore, see docs/backends/llama-cpp.md).
CACHE_RAM_MIB = 8192


def default_cache_ram() -> int:
    """The host-RAM prompt cache's cap in MiB when the YAML sets none: 8192, at most a quarter of physical memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):
        return CACHE_RAM_MIB
    return max(0, min(CACHE_RAM_MIB, total // 4))

OPTIONS: list[OptionSpec] = [
    OptionSpec("use_jinja", "bool", "render chats with the GGUF's own Jinja chat template (off: the built-in template "
               "for the architecture)", default=True, aliases=("jinja",)),
    OptionSpec("context_shift", "bool", "when the context fills, drop the oldest tokens (keeping the prompt's start) "
               "and continue; off: stop with finish reason length", default=False),
    OptionSpec("cache_ram", "int", "MiB cap of a host-RAM prompt cache shared by requests (-1 unlimited, 0 off; "
               f"default {CACHE_RAM_MIB}, at most a quarter of the machine's memory)", minimum=-1),
    OptionSpec("batch_invariant", "bool", "the same greedy answer whatever the prompt cache held and whoever shares "
               "the batch: one kernel path for every shape (ggml-cpu's tiled K-quant matmul off, prompt chunks under "
               "flash attention's 64-query tile, decodes kept multi-sequence); off: llama.cpp's fastest path per shape",
               default=True, aliases=("deterministic",), env="LLAMACPP_BATCH_INVARIANT"),
    OptionSpec("repack", "bool", "CPU-repacked weight layouts (llama.cpp's default; off here): greedy text then depends "
               "on the prompt cache and on batch neighbours, for no measurable speed on this machine", default=False,
               env="LLAMACPP_REPACK"),
    OptionSpec("parallel", "int", "sequences decoded together in one context (continuous batching)", default=1,
               aliases=("n_parallel",), env="LLAMACPP_PARALLEL", minimum=1),
    OptionSpec("grpc_servers", "hostports", "offload layers to llama.cpp RPC workers (comma-separated host:port, "
               "started with `localai worker llama-cpp-rpc`); all layers go to them unless gpu_layers says otherwise",
               aliases=("rpc_servers",), env="LLAMACPP_GRPC_SERVERS", supported=rpc_support()),
    OptionSpec("fit_params", "bool", "shrink the context size so weights and KV cache fit the free host RAM, "
               "keeping fit_params_target MiB spare and at least fit_params_min_ctx tokens (layer offload is "
               "not fitted: gpu_layers decides it)", default=True, aliases=("fit",)),
    OptionSpec("fit_params_target", "int", "memory margin in MiB kept free when fitting", default=1024, aliases=("fit_target",),
               minimum=0),
    OptionSpec("fit_params_min_ctx", "int", "smallest context size fitting may choose", default=4096, aliases=("fit_ctx",),
               minimum=1),
    OptionSpec("swa_full", "bool", "a full-size KV cache for sliding-window attention layers (Gemma 2/3, ...): "
               "every cached prompt prefix stays reusable, for several times the KV memory; off (llama-server's "
               "default) keeps only the window, and a prefix whose window cells are gone is evaluated again",
               default=True),
    OptionSpec("n_cache_reuse", "int", "reuse cached KV chunks of at least this many tokens by shifting (0 = off)",
               default=0, aliases=("cache_reuse",), minimum=0),
    OptionSpec("slot_prompt_similarity", "float", "how similar a prompt must be to a slot's cached prompt to reuse "
               "that slot (0 disables)", default=0.1, aliases=("sps",), minimum=0, maximum=1),
    OptionSpec("n_batch", "int", "prompt tokens evaluated per decode call", default=512, aliases=("batch",), minimum=1),
    OptionSpec("queue_size", "int", "requests that may wait for a free slot; beyond it the API answers 429 "
               "(Anthropic: 529) with Retry-After", default=64, aliases=("max_queue",), env="LLAMACPP_QUEUE_SIZE",
               minimum=0),
]

def parse(entries: list[str], config: Any, environ: dict[str, str] | None = None,
          specs: list[OptionSpec] | None = None, cache_types: tuple[str, ...] = CACHE_TYPES) -> dict[str, Any]:
    """``options:`` -> settings, env vars filling what the YAML leaves out, then the config checks."""
    parsed = parse_option_list(entries, specs or OPTIONS, dict(os.environ) if environ is None else environ)
    if parsed.get("swa_full") is False:
        # Both move cells of a sequence around, which a window-sized SWA cache may no longer hold.
        for name, on in (("context_shift", parsed.get("context_shift")), ("n_cache_reuse", parsed.get("n_cache_reuse"))):
            if on:
                raise ValueError(f"option {name!r} needs swa_full on (a window-sized SWA cache cannot shift cells)")
    if parsed.get("repack") and parsed.get("batch_invariant", True):
        raise ValueError("option 'repack' needs batch_invariant off (repacked kernels round a row by how many rows "
                         "share its batch); set 'batch_invariant:false' too, or leave repack off")
    validate_config(config, parsed, cache_types)
    return parsed


def flash_attention_setting(value: Any) -> bool | None:
    """The YAML's flash_attention as on (True), off (False) or auto (None)."""
    if value is None or isinstance(value, bool):
        return value
    key = str(value).strip().lower()
    if key not in FLASH_ATTENTION:
        raise ValueError(f"flash_attention {value!r}: use on, off or auto")
    return FLASH_ATTENTION[key]


def cache_types_of(config: Any) -> tuple[str | None, str | None]:
    """cache_type_k / cache_type_v, lower-cased, the fork's ``turbo3_0`` spelt ``turbo3`` (its llama-server takes
    both); ``f16: false`` means f32 where they are unset. Every reader (checks, params, fit) sees one spelling."""
    default = "f32" if getattr(config, "f16", None) is False else None

    def spelling(value: Any) -> str | None:
        if not value:
            return None
        name = str(value).strip().lower()
        return name.removesuffix("_0") if name.removesuffix("_0") in FORK_TYPES else name

    return spelling(getattr(config, "cache_type_k", None) or default), spelling(getattr(config, "cache_type_v", None) or default)


def validate_config(config: Any, options: dict[str, Any], cache_types: tuple[str, ...] = CACHE_TYPES) -> None:
    """Config fields this backend must refuse before load (a clear error beats a crash in the engine)."""
    k, v = cache_types_of(config)
    for field, value in (("cache_type_k", k), ("cache_type_v", v)):
        if value and value not in cache_types:
            if value in FORK_TYPES:
                raise ValueError(f"{field} {value} is a KV cache type of the llama-cpp-turboquant fork, which stock "
                                 "llama.cpp does not have: use backend: turboquant (installed with `localai backends "
                                 "install turboquant`, which builds the fork)")
            raise ValueError(f"{field} {value!r} is not supported; use one of {', '.join(cache_types)}")
    fa = flash_attention_setting(getattr(config, "flash_attention", None))
    if v and v not in UNQUANTIZED and fa is False:
        raise ValueError(f"cache_type_v {v} (a quantized V cache) needs flash attention, but flash_attention is off; "
                         "set flash_attention: on (or auto), or use an f16/f32/bf16 V cache")
