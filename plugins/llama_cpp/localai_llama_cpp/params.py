"""The LocalAI config and parsed options as ``llama_cpp.Llama`` arguments (worker side, at load).

Load-time effects live here: cache types, flash attention, RPC offload (``grpc_servers``) and context
fitting (``fit_params*``). Generation-time options are the model's business.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from localai_llama_cpp import fit, ggml
from localai_llama_cpp.options import UNQUANTIZED, cache_types_of, flash_attention_setting

log = logging.getLogger("localai_llama_cpp")

DEFAULT_CONTEXT = 4096
ALL_LAYERS = -1


def flash_attention(config: Any, type_v: str | None) -> bool:
    """on/off/auto -> True/False; unset means auto, as in llama.cpp and LocalAI.

    llama-cpp-python's ``Llama`` only takes on or off, so ``auto`` resolves here: on, as llama.cpp's
    auto does for every backend this build offloads to (CPU and RPC implement flash attention). It is
    a quarter of the batched throughput on CPU. A quantized V cache needs it (off was refused at parse time).
    """
    fa = flash_attention_setting(config.flash_attention)
    if type_v and type_v not in UNQUANTIZED and fa is False:
        raise ValueError(f"cache_type_v {type_v} (a quantized V cache) needs flash attention; remove flash_attention: off")
    return True if fa is None else fa


def llama_kwargs(config: Any, model_path: str, options: dict[str, Any]) -> dict[str, Any]:
    import llama_cpp

    threads = config.threads or os.cpu_count() or 1
    type_k, type_v = cache_types_of(config)
    servers = list(options.get("grpc_servers") or [])
    gpu_layers = config.gpu_layers
    if servers:
        ggml.add_rpc_servers(servers)
        if gpu_layers is None:
            gpu_layers = ALL_LAYERS  # the point of listing RPC workers is to run the layers there
        log.info("offloading %s layers to RPC workers %s", "all" if gpu_layers < 0 else gpu_layers, ", ".join(servers))
    n_ctx = fit.fitted_n_ctx(config.context_size or DEFAULT_CONTEXT, model_path, type_k, type_v, options)
    kwargs: dict[str, Any] = {
        "model_path": model_path,
        "n_ctx": n_ctx,
        "n_threads": threads,
        "n_threads_batch": threads,
        "n_gpu_layers": gpu_layers or 0,
        "use_mmap": True if config.mmap is None else config.mmap,
        "use_mlock": bool(config.mmlock),
        "n_batch": int(options.get("n_batch") or 512),
        "embedding": bool(config.embeddings),
        "swa_full": bool(options.get("swa_full", True)),
        "verbose": os.environ.get("LOCALAI_ENGINE_VERBOSE", "") in ("1", "true"),
    }
    if config.main_gpu not in (None, ""):
        kwargs["main_gpu"] = int(config.main_gpu)
    if config.embeddings:
        kwargs["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
    if config.parameters.seed is not None:
        kwargs["seed"] = config.parameters.seed
    ids = options.get("cache_type_ids") or {}  # a fork's types, resolved and checked by its plugin
    for key, name in (("type_k", type_k), ("type_v", type_v)):
        if name:
            kwargs[key] = ids[name] if name in ids else ggml.type_id(name)
    kwargs["flash_attn"] = flash_attention(config, type_v)
    return kwargs
