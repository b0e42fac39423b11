"""Hook implementations, kept thin: registration and option parsing here; behaviour lives on the model classes.

Nothing here imports torch or transformers: the engine lives in its own environment
(``LOCALAI_PYTHON_TRANSFORMERS`` or an installed backend environment), imported only in the worker.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from typing import Any

from localai import hookimpl

from localai_transformers.options import OPTIONS, SENTENCE_BACKENDS, parse

BACKEND = "transformers"
ENGINE_MODULES = ("torch", "transformers")


def check() -> str | None:
    """Whether the engine is importable here, without importing it (the core skips this for another interpreter)."""
    missing = [m for m in ENGINE_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return (f"{', '.join(missing)} not installed in this environment for the transformers backend "
                "(run: localai backends install transformers)")
    return None


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register(
        BACKEND,
        aliases=("huggingface-transformers", *SENTENCE_BACKENDS),
        capabilities=("chat", "completion", "embeddings", "tokenize", "grammar"),
        description="Hugging Face transformers: causal LMs (HF folders, GGUF dequantized, hub ids), "
                    "sentence-transformers and pooled embeddings, OpenVINO",
        check=check,
        options=OPTIONS,
    )


@hookimpl
def parse_options(backend: str, options: list[str], config: Any) -> dict[str, Any] | None:
    if backend != BACKEND:
        return None
    return parse(options, config)


@hookimpl
def load_model(backend: str, config: Any, model_path: str | None, options: dict[str, Any]) -> Any:
    if backend != BACKEND:
        return None
    from localai_transformers.loading import load

    return load(config, model_path, options, backend=BACKEND)


def _mine(model: Any) -> bool:
    """Ours only if this worker loaded our base module; never import it into other workers."""
    module = sys.modules.get("localai_transformers.base")
    return module is not None and isinstance(model, module.TransformersModel)


@hookimpl
def generate(model: Any, request: Any, cancelled: Callable[[], bool]) -> Iterator[Any] | None:
    return model.generate(request, cancelled) if _mine(model) else None


@hookimpl
def embed(model: Any, inputs: list[Any]) -> Any:
    return model.embed(inputs) if _mine(model) else None


@hookimpl
def tokenize(model: Any, text: str, add_special: bool) -> list[int] | None:
    return model.tokenize(text, add_special) if _mine(model) else None


@hookimpl
def detokenize(model: Any, tokens: list[int]) -> str | None:
    return model.detokenize(tokens) if _mine(model) else None


@hookimpl
def unload_model(model: Any) -> None:
    if _mine(model):
        model.close()
