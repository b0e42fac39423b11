"""The ik-llama-cpp backend, declared: its names, capabilities, option table and parser here; the engine loads
only in :func:`load`, in the worker."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from localai import hookimpl
from localai.options import parse_option_list

from localai_ik_llama.cpu import missing_avx2
from localai_ik_llama.grammar import converter_available
from localai_ik_llama.options import OPTIONS, check_batches, validate_config

BACKEND = "ik-llama-cpp"


def check() -> str | None:
    """Whether the ik_llama.cpp wheel is installed and this CPU can run it, without importing it."""
    if importlib.util.find_spec("ik_llama_cpp") is None:
        return "ik-llama-cpp-python is not installed (pip install ik-llama-cpp-python)"
    return missing_avx2()


def capabilities() -> tuple[str, ...]:
    """``grammar`` only when llama-cpp-python's JSON-schema converter is there to feed the engine's GBNF."""
    base = ("chat", "completion", "embeddings", "tokenize")
    return (*base, "grammar") if converter_available() else base


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register(
        BACKEND,
        aliases=("ik_llama", "ik-llama"),
        capabilities=capabilities(),
        formats=("gguf",),
        description="GGUF models on ik_llama.cpp (CPU-optimised llama.cpp fork, needs AVX2) via ik-llama-cpp-python",
        check=check,
        options=OPTIONS,
        parse=parse,
        load="localai_ik_llama.plugin:load",
    )


def parse(options: list[str], config: Any) -> dict[str, Any]:
    parsed = parse_option_list(options, OPTIONS)
    validate_config(config)
    check_batches(parsed)
    return parsed


def load(config: Any, model_path: str | None, options: dict[str, Any]) -> Any:
    """Worker side: refused clearly on a CPU without AVX2 (the fork's kernels need it), else the model."""
    reason = missing_avx2()
    if reason:
        raise RuntimeError(f"model {config.name!r}: {reason}")
    from localai_ik_llama.model import IkLlamaModel

    return IkLlamaModel.load(config, model_path, options, backend=BACKEND)
