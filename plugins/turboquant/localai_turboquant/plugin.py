"""The turboquant backend, declared: names, capabilities, option table and parser here, loading in :func:`load`.
Its model is a :class:`LlamaCppModel` on the fork's build (``localai backends install turboquant`` makes it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localai import hookimpl

from localai_turboquant.engine import check
from localai_turboquant.options import OPTIONS, parse

BACKEND = "turboquant"


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register(
        BACKEND,
        aliases=("llama-cpp-turboquant", "turbo-quant"),
        capabilities=("chat", "completion", "embeddings", "tokenize", "grammar", "vision", "prompt_cache"),  # vision: with mmproj
        formats=("gguf",),
        description="GGUF models on llama.cpp built from the llama-cpp-turboquant fork: its turbo2/turbo3/turbo4 "
                    "KV cache types besides the standard ones",
        check=check,
        options=OPTIONS,
        parse=parse,
        load="localai_turboquant.plugin:load",
    )


def load(config: Any, model_path: str | None, options: dict[str, Any]) -> Any:
    """Worker side: the RPC servers before llama_cpp loads, then the model."""
    from localai_llama_cpp.ggml import add_rpc_servers

    add_rpc_servers(options.get("grpc_servers") or [])
    from localai_turboquant.model import TurboQuantModel

    return TurboQuantModel.load(config, model_path, options, backend=BACKEND)
