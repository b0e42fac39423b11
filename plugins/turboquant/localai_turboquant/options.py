"""turboquant's options: llama-cpp's table and checks, with the fork's turbo cache types allowed.

Runs in the server process: no engine import.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from localai.options import OptionSpec
from localai_llama_cpp import options as llama_options

TURBO_TYPES = llama_options.FORK_TYPES
CACHE_TYPES = llama_options.CACHE_TYPES + TURBO_TYPES  # turbo3_0 is read as turbo3 (cache_types_of)
INSTALL = "`localai backends install turboquant` (builds the llama-cpp-turboquant fork into the backend's environment)"

OPTIONS: list[OptionSpec] = [
    # The old way to reach the fork (a library folder under llama-cpp-python's 0.3.36 bindings) misread its structs.
    OptionSpec("lib_path", "str", "gone: the fork's llama.cpp comes with the backend's environment",
               aliases=("turboquant_lib", "llama_cpp_lib_path"),
               supported=f"the fork's library comes with the backend's environment now: {INSTALL}"),
    # The point of this backend is KV memory: the SWA layers keep only their window, as llama-server does.
    *(dataclasses.replace(o, default=False) if o.name == "swa_full" else o for o in llama_options.OPTIONS),
]


def is_turbo(cache_type: str | None) -> bool:
    """``cache_type`` as ``cache_types_of`` spells it."""
    return cache_type in TURBO_TYPES


def parse(entries: list[str], config: Any) -> dict[str, Any]:
    """llama-cpp's parsing with the turbo types allowed; they need flash attention (the fork's kernels are FA-only)."""
    parsed = llama_options.parse(entries, config, specs=OPTIONS, cache_types=CACHE_TYPES)
    k, v = llama_options.cache_types_of(config)
    turbo = [f"{name} {value}" for name, value in (("cache_type_k", k), ("cache_type_v", v)) if is_turbo(value)]
    if turbo and llama_options.flash_attention_setting(getattr(config, "flash_attention", None)) is False:
        raise ValueError(f"{' and '.join(turbo)} needs flash attention, but flash_attention is off; remove it or set on/auto")
    return parsed
