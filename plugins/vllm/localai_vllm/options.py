"""The model YAML as vLLM engine arguments: LocalAI's field names, ``engine_args:`` and ``--flag`` options.

Parsing runs in the server (no vLLM import): it checks shapes and values. Whether every name is a real engine
argument is checked in the worker against the installed vLLM (:func:`check_names`), with the nearest valid name.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from localai.options import OptionSpec

# LocalAI's vLLM YAML fields, passed to the engine under the same name.
YAML_FIELDS = ("gpu_memory_utilization", "enforce_eager", "swap_space", "max_model_len", "tensor_parallel_size",
               "pipeline_parallel_size", "dtype", "quantization", "load_format", "trust_remote_code",
               "limit_mm_per_prompt", "distributed_executor_backend", "max_num_seqs", "seed")
# LocalAI's defaults: prefix caching and chunked prefill on unless the YAML says otherwise.
# Structured output through llguidance, the core's constraint engine, so a schema means the same on every backend.
DEFAULTS = {"enable_prefix_caching": True, "enable_chunked_prefill": True,
            "structured_outputs_config": {"backend": "guidance"}}

OPTIONS = [
    OptionSpec("--*", "str", "any vLLM engine argument in command-line form, e.g. --max-num-seqs=8; a bare flag means "
               "true; checked against the installed vLLM at load"),
    OptionSpec("kv_cache_space", "int", "GiB of RAM for the KV cache on CPU (VLLM_CPU_KVCACHE_SPACE); default: what "
               "fits a quarter of the free RAM, at most 4", aliases=("cpu_kvcache_space",)),
]


def _value(raw: str) -> Any:
    """``8`` -> 8, ``0.5`` -> 0.5, ``true`` -> True, ``{"image": 1}`` -> dict; anything else stays a string."""
    low = raw.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse(options: list[str], config: Any) -> dict[str, Any]:
    """Options and YAML fields -> ``{"engine_args": {...}, "kv_cache_space": int | None}``; ValueError names the entry."""
    # Pooling (embedding) models such as BERT have no causal KV cache to share: leave those to vLLM there.
    args: dict[str, Any] = {} if getattr(config, "embeddings", False) else dict(DEFAULTS)
    extra = dict(getattr(config, "model_extra", None) or {})
    for name in YAML_FIELDS:
        value = extra.get(name, getattr(config, name, None) if name in type(config).model_fields else None)
        if value is not None:
            args[name] = value
    if "max_model_len" not in args and getattr(config, "context_size", None):
        args["max_model_len"] = config.context_size
    if getattr(config, "parameters", None) is not None and config.parameters.seed is not None and "seed" not in args:
        args["seed"] = config.parameters.seed
    engine_args = extra.get("engine_args")
    if engine_args is not None:
        if not isinstance(engine_args, dict):
            raise ValueError("engine_args must be a map of vLLM engine argument names to values")
        args.update({str(k).replace("-", "_"): v for k, v in engine_args.items()})
    kv_space = None
    for entry in options:
        if entry.startswith("--"):
            name, eq, raw = entry[2:].partition("=")
            if not name:
                raise ValueError(f"option {entry!r}: no engine argument name after --")
            args[name.replace("-", "_")] = _value(raw) if eq else True
            continue
        name, _, raw = entry.partition(":")
        if name.strip() in ("kv_cache_space", "cpu_kvcache_space"):
            try:
                kv_space = int(raw)
            except ValueError:
                raise ValueError(f"option kv_cache_space: {raw!r} is not a whole number of GiB") from None
            if kv_space < 1:
                raise ValueError("option kv_cache_space: at least 1 GiB")
            continue
        raise ValueError(f"unknown option {name!r}: vLLM options are --<engine-arg>[=value] or kv_cache_space:<GiB>")
    return {"engine_args": args, "kv_cache_space": kv_space}


def check_names(args: dict[str, Any], valid: set[str]) -> None:
    """Every name must be a real engine argument of the installed vLLM (unlike LocalAI's ``disable_log_status``)."""
    for name in args:
        if name not in valid:
            near = difflib.get_close_matches(name, sorted(valid), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"{name!r} is not a vLLM engine argument{hint}")
