"""turboquant's options: llama-cpp's table plus where the fork's library is, and the turbo cache types.

Runs in the server process: no engine import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localai.options import OptionSpec
from localai_llama_cpp import options as llama_options

TURBO_TYPES = ("turbo2", "turbo3", "turbo4")
CACHE_TYPES = llama_options.CACHE_TYPES + TURBO_TYPES
LIB_ENV = "TURBOQUANT_LIB_PATH"
FORK = "https://github.com/TheTom/llama-cpp-turboquant"
HOW = (f"build the llama-cpp-turboquant fork ({FORK}) as shared libraries and point the plugin at the folder "
       f"holding its libllama.so: options: [\"lib_path:/path/to/lib\"] in the model YAML, or ${LIB_ENV}")

OPTIONS: list[OptionSpec] = [
    OptionSpec("lib_path", "str", "folder with the llama-cpp-turboquant fork's libllama / libggml* shared libraries "
               "(unset: the stock llama.cpp from llama-cpp-python, standard cache types only)",
               aliases=("turboquant_lib", "llama_cpp_lib_path"), env=LIB_ENV),
    *llama_options.OPTIONS,
]


def is_turbo(cache_type: str | None) -> bool:
    return bool(cache_type) and str(cache_type).lower().removesuffix("_0") in TURBO_TYPES


def check_lib_path(path: str) -> None:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ValueError(f"option 'lib_path': {path!r} is not a folder")
    if not any(folder.glob("libllama.*")) and not any(folder.glob("llama.dll")):
        raise ValueError(f"option 'lib_path': {path!r} holds no libllama shared library; {HOW}")


def parse(entries: list[str], config: Any) -> dict[str, Any]:
    """llama-cpp's parsing with the turbo types allowed; a turbo type without a fork library is refused here."""
    parsed = llama_options.parse(entries, config, specs=OPTIONS, cache_types=CACHE_TYPES + ("turbo2_0", "turbo3_0", "turbo4_0"))
    if parsed.get("lib_path"):
        parsed["lib_path"] = str(Path(parsed["lib_path"]).expanduser().resolve())
        check_lib_path(parsed["lib_path"])
    k, v = llama_options.cache_types_of(config)
    turbo = [f"{name} {value}" for name, value in (("cache_type_k", k), ("cache_type_v", v)) if is_turbo(value)]
    if turbo:
        if not parsed.get("lib_path"):
            raise ValueError(f"{' and '.join(turbo)} needs a llama.cpp library built from the turboquant fork, and none "
                             f"is configured (stock llama.cpp only has {', '.join(llama_options.CACHE_TYPES)}); {HOW}")
        if llama_options.flash_attention_setting(getattr(config, "flash_attention", None)) is False:
            raise ValueError(f"{' and '.join(turbo)} needs flash attention, but flash_attention is off; remove it or set on/auto")
    return parsed

