"""The llama-cpp backend, declared: its names, capabilities, option table and parser here; the engine loads only
in :func:`load`, in the worker."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from localai import hookimpl

from localai_llama_cpp.options import OPTIONS, parse

BACKEND = "llama-cpp"


def check() -> str | None:
    """Whether llama-cpp-python is importable, without importing it."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (run scripts/setup.sh, or pip install llama-cpp-python)"
    return None


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register(
        BACKEND,
        aliases=("llama", "llama.cpp", "llamacpp"),
        capabilities=("chat", "completion", "embeddings", "tokenize", "grammar", "vision", "prompt_cache"),  # vision: with mmproj
        formats=("gguf",),
        description="GGUF models on llama.cpp via llama-cpp-python",
        check=check,
        options=OPTIONS,
        parse=parse,
        load="localai_llama_cpp.plugin:load",
    )


def load(config: Any, model_path: str | None, options: dict[str, Any]) -> Any:
    """Worker side: the RPC servers before libllama loads (it lists devices once), then the model."""
    from localai_llama_cpp.ggml import add_rpc_servers

    add_rpc_servers(options.get("grpc_servers") or [])
    from localai_llama_cpp.model import LlamaCppModel

    return LlamaCppModel.load(config, model_path, options, backend=BACKEND)
