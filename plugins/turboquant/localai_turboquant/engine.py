"""Is this environment's llama.cpp the turboquant fork's build, and do its type ids agree? (no engine import)

``localai backends install turboquant`` builds llama-cpp-python over the fork (``localai_llama_cpp.build``), which
checks the bindings' structs against the fork's llama.h and leaves a marker in the ``llama_cpp`` package saying
what was built, with the ggml type ids of the fork's ggml.h. The worker refuses to load a model unless the marker
is there and the turbo ids it records are the ones this plugin passes to llama.cpp.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from localai_llama_cpp.build import MARKER

from localai_turboquant.options import INSTALL

ENGINE = "llama-cpp-turboquant"
# ggml_type ids of the fork's turbo KV cache types (its ggml.h); other builds number 42 differently (0.3.36: Q2_0).
TURBO_IDS = {"turbo2": 42, "turbo3": 43, "turbo4": 44}


def build_info() -> dict[str, Any] | None:
    """The build marker of the installed ``llama_cpp`` package, or ``None`` (not installed, or a stock build)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    marker = Path(next(iter(spec.submodule_search_locations)), MARKER)
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return info if info.get("engine") == ENGINE else None


def check() -> str | None:
    """Why turboquant cannot run in this environment (``None``: it can), without importing the engine."""
    if build_info() is None:
        found = importlib.util.find_spec("llama_cpp") is not None
        return ("this environment's llama-cpp-python is stock llama.cpp, not the turboquant fork's build" if found
                else "llama-cpp-python is not installed") + f"; install the backend: {INSTALL}"
    return None


def type_id(name: str) -> int:
    """The ggml type id of a turbo cache type, checked against the build's ggml.h and the loaded library."""
    info = build_info()
    if info is None:
        raise RuntimeError(check() or "turboquant's engine is missing")
    key = name.lower().removesuffix("_0")
    pinned = TURBO_IDS[key]
    header = (info.get("ggml_types") or {}).get(f"{key}_0")
    if header != pinned:
        raise RuntimeError(f"the fork's ggml.h numbers {key} {header}, this plugin passes {pinned}: the build "
                           f"({info.get('commit')}) and the plugin disagree; reinstall with {INSTALL}")
    from localai_llama_cpp import ggml

    found = ggml.find_type(key)
    if found != pinned:
        raise RuntimeError(f"the loaded llama.cpp library names type {pinned} {found and 'otherwise' or 'nothing'} "
                           f"(found {key} at {found}); it is not the fork's build; reinstall with {INSTALL}")
    return pinned
