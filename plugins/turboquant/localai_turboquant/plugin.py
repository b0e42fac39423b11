"""The turboquant backend, declared: names, capabilities, option table and parser here, loading in :func:`load`.
Its model is a :class:`LlamaCppModel`, whose methods the core calls for generation, embeddings and tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localai import hookimpl
from localai_llama_cpp.plugin import check

from localai_turboquant.options import OPTIONS, parse

BACKEND = "turboquant"


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register(
        BACKEND,
        aliases=("llama-cpp-turboquant", "turbo-quant"),
        capabilities=("chat", "completion", "embeddings", "tokenize", "grammar"),
        formats=("gguf",),
        description="GGUF models on a llama.cpp build from the llama-cpp-turboquant fork (turbo2/turbo3/turbo4 "
                    "KV cache); without the fork's library, stock llama.cpp with the standard cache types",
        check=check,
        options=OPTIONS,
        parse=parse,
        load="localai_turboquant.plugin:load",
    )


def load(config: Any, model_path: str | None, options: dict[str, Any]) -> Any:
    """Worker side: the fork's library and the RPC servers before llama_cpp loads, then the model."""
    from localai_llama_cpp.ggml import add_rpc_servers

    from localai_turboquant.library import use_library

    use_library(options.get("lib_path"))  # before llama_cpp loads (the model module imports it)
    add_rpc_servers(options.get("grpc_servers") or [])
    from localai_turboquant.model import TurboQuantModel

    return TurboQuantModel.load(config, model_path, options, backend=BACKEND)
