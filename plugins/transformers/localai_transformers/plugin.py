"""The transformers backend, declared: names, capabilities, option table and parser; behaviour lives on the model
classes, loaded by :func:`load` in the worker.

Nothing here imports torch or transformers: the engine lives in its own environment
(``LOCALAI_PYTHON_TRANSFORMERS`` or an installed backend environment), imported only in the worker.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
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
        capabilities=("chat", "completion", "embeddings", "tokenize", "grammar", "vision"),  # vision: image-text-to-text
        description="Hugging Face transformers: causal LMs (HF folders, GGUF dequantized, hub ids), "
                    "sentence-transformers and pooled embeddings, OpenVINO",
        check=check,
        options=OPTIONS,
        parse=parse,
        load="localai_transformers.plugin:load",
    )


def load(config: Any, model_path: str | None, options: dict[str, Any]) -> Any:
    from localai_transformers.loading import load as load_kind

    return load_kind(config, model_path, options, backend=BACKEND)
