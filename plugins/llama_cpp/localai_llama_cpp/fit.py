"""``fit_params``: shrink the context to the memory available, before llama.cpp allocates it.

The KV cache is what grows with the context: per token it costs, for every layer, n_head_kv x
(key_length x K bytes + value_length x V bytes). Those come from the GGUF header, read here without
loading the model. llama.cpp's own fitting (``llama_params_fit``) is not in its public C API.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from localai.gguf import gguf_metadata

log = logging.getLogger("localai_llama_cpp.fit")

MIB = 1024 * 1024
# Bytes per element of each KV cache type (block size / bytes per block for the quantized ones).
TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32,
              "iq4_nl": 18 / 32, "q5_0": 22 / 32, "q5_1": 24 / 32,
              # the llama-cpp-turboquant fork's (ggml-common.h: 128-element blocks)
              "turbo2": 34 / 128, "turbo3": 50 / 128, "turbo4": 68 / 128}
UNKNOWN_TYPE_BYTES = 2.0  # a type not listed here: f16's size keeps the estimate safe
COMPUTE_RESERVE = 256 * MIB  # compute buffers and runtime, beyond weights and KV cache


@dataclass
class KvShape:
    n_layer: int
    n_head_kv: int
    key_length: int
    value_length: int
    n_ctx_train: int | None = None

    def bytes_per_token(self, type_k: str | None, type_v: str | None) -> float:
        k = TYPE_BYTES.get(type_k or "f16", UNKNOWN_TYPE_BYTES)
        v = TYPE_BYTES.get(type_v or "f16", UNKNOWN_TYPE_BYTES)
        return self.n_layer * self.n_head_kv * (self.key_length * k + self.value_length * v)


def kv_shape(meta: dict[str, Any]) -> KvShape | None:
    arch = meta.get("general.architecture")
    get = lambda key: meta.get(f"{arch}.{key}")  # noqa: E731
    n_layer, n_embd, n_head = get("block_count"), get("embedding_length"), get("attention.head_count")
    if not isinstance(n_layer, int) or not isinstance(n_head, int) or not n_head:
        return None
    n_head_kv = get("attention.head_count_kv")
    n_head_kv = n_head_kv if isinstance(n_head_kv, int) else n_head
    head_dim = (n_embd // n_head) if isinstance(n_embd, int) else 128
    key_length = get("attention.key_length") or head_dim
    value_length = get("attention.value_length") or head_dim
    return KvShape(n_layer, n_head_kv, int(key_length), int(value_length), get("context_length"))


def host_available() -> int:
    """Bytes of RAM this process may still use: MemAvailable, capped by a cgroup v2 limit."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        used = int(open("/sys/fs/cgroup/memory.current").read().strip())
        if limit.isdigit():
            left = int(limit) - used
            available = left if available is None else min(available, left)
    except (OSError, ValueError):
        pass
    if available is None:
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        available = pages * size
    return available


def fit_context(requested: int, per_token: float, fixed: int, available: int, target_mib: int, min_ctx: int) -> int:
    """The largest context <= ``requested`` whose KV cache fits ``available`` minus weights and margin.

    Never below ``min(requested, min_ctx)``: fitting shrinks a context, it does not refuse to load.
    """
    budget = available - fixed - target_mib * MIB
    fits = int(budget // per_token) if per_token > 0 and budget > 0 else 0
    floor = min(requested, min_ctx)
    return max(floor, min(requested, fits))


def fitted_n_ctx(requested: int, model_path: str, type_k: str | None, type_v: str | None, options: dict[str, Any],
                 available: int | None = None) -> int:
    """``requested`` shrunk per the fit_params options (unchanged when fitting is off or impossible)."""
    if not options.get("fit_params", True):
        return requested
    try:
        shape = kv_shape(gguf_metadata(model_path))
    except (OSError, ValueError) as exc:
        log.warning("fit_params: cannot read %s (%s); keeping context %d", model_path, exc, requested)
        return requested
    if shape is None:
        return requested
    per_token = shape.bytes_per_token(type_k, type_v)
    fixed = os.path.getsize(model_path) + COMPUTE_RESERVE
    free = host_available() if available is None else available
    n_ctx = fit_context(requested, per_token, fixed, free, int(options.get("fit_params_target", 1024)),
                        int(options.get("fit_params_min_ctx", 4096)))
    if n_ctx < requested:
        log.warning("fit_params: context %d needs %.0f MiB of KV cache but %.0f MiB are free (keeping %d MiB spare); "
                    "using context %d", requested, requested * per_token / MIB, free / MIB,
                    options.get("fit_params_target", 1024), n_ctx)
    return n_ctx
