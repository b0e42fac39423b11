"""The vllm backend, declared: names, capabilities, option table and parser here (no vLLM import); the engine
loads only in :func:`load`, in the worker."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from localai import hookimpl

from localai_vllm.options import OPTIONS, YAML_FIELDS, parse

BACKEND = "vllm"


def check() -> str | None:
    """Whether vLLM is importable here, without importing it."""
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed in this environment (run: localai backends install vllm)"
    return None


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register(
        BACKEND,
        aliases=("vllm-cpu",),
        capabilities=("chat", "completion", "embeddings", "tokenize", "grammar", "vision"),
        description="vLLM's engine: continuous batching, prefix caching, structured output, HF model folders",
        check=check,
        options=OPTIONS,
        yaml_fields=(*YAML_FIELDS, "engine_args"),
        parse=parse,
        load="localai_vllm.plugin:load",
    )


def load(config: Any, model_path: str | None, options: dict[str, Any]) -> Any:
    from localai_vllm.model import VLLMModel

    return VLLMModel.load(config, model_path, parse(list(config.options), config) if not options.get("engine_args") else options)
