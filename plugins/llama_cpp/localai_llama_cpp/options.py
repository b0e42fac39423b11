"""The llama.cpp option table (``options:`` entries) and config checks that need no engine."""

from __future__ import annotations

from typing import Any

from localai.options import OptionSpec

CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")

OPTIONS: list[OptionSpec] = [
    OptionSpec("use_jinja", "bool", "render chats with the GGUF's own Jinja chat template", default=True, aliases=("jinja",)),
    OptionSpec("context_shift", "bool", "when the context fills, drop the oldest tokens (keeping the prompt's start) and continue; "
               "off: stop with finish reason length", default=False),
    OptionSpec("cache_ram", "int", "MiB cap of a host-RAM prompt cache shared by requests (-1 unlimited, 0 off)", default=0),
    OptionSpec("parallel", "int", "sequences decoded together in one context (continuous batching)", default=1,
               aliases=("n_parallel",), env="LLAMACPP_PARALLEL"),
    OptionSpec("grpc_servers", "list", "offload layers to llama.cpp RPC workers (comma-separated host:port)",
               aliases=("rpc_servers",), env="LLAMACPP_GRPC_SERVERS"),
    OptionSpec("fit_params", "bool", "fit context size and offload to the memory available", default=True, aliases=("fit",)),
    OptionSpec("fit_params_target", "int", "memory margin in MiB kept free when fitting", default=1024, aliases=("fit_target",)),
    OptionSpec("fit_params_min_ctx", "int", "smallest context size fitting may choose", default=4096, aliases=("fit_ctx",)),
    OptionSpec("n_cache_reuse", "int", "reuse cached KV chunks of at least this many tokens by shifting (0 = off)", default=0,
               aliases=("cache_reuse",)),
    OptionSpec("slot_prompt_similarity", "float", "how similar a prompt must be to a slot's cached prompt to reuse that slot "
               "(0 disables)", default=0.1, aliases=("sps",)),
    OptionSpec("n_batch", "int", "prompt tokens evaluated per decode call", default=512, aliases=("batch",)),
]


def validate_config(config: Any, options: dict[str, Any]) -> None:
    """Config fields this backend must refuse before load (a clear error beats a crash in the engine)."""
    for field in ("cache_type_k", "cache_type_v"):
        value = getattr(config, field, None)
        if value and str(value).lower() not in CACHE_TYPES:
            raise ValueError(f"{field} {value!r} is not supported; use one of {', '.join(CACHE_TYPES)}")
    fa = getattr(config, "flash_attention", None)
    if isinstance(fa, str) and fa.lower() not in ("on", "off", "auto", "true", "false"):
        raise ValueError(f"flash_attention {fa!r}: use on, off or auto")
