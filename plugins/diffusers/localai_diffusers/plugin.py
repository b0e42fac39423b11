"""Hook implementations, kept thin: registration and options here, diffusers only inside ``load_model``."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

from localai import hookimpl

from localai_diffusers.options import OPTIONS, parse

BACKEND = "diffusers"
PYTHON_ENV = "LOCALAI_PYTHON_DIFFUSERS"


def check() -> str | None:
    """Whether the engine can run: its own environment's interpreter, or diffusers and torch here (no import)."""
    python = os.environ.get(PYTHON_ENV)
    if python:
        return None if os.access(python, os.X_OK) else f"{PYTHON_ENV}={python} is not an executable interpreter"
    missing = [m for m in ("torch", "diffusers", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"{', '.join(missing)} not installed here: run `localai backends install diffusers` "
                f"(or point {PYTHON_ENV} at an environment with torch, diffusers and localai-diffusers)")
    return None


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register(
        BACKEND,
        aliases=("diffusers-backend",),
        capabilities=("image",),
        description="image generation with Hugging Face diffusers (Stable Diffusion, SDXL, SD3, Flux, ...)",
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
    from localai_diffusers.model import DiffusersModel

    return DiffusersModel.load(config, model_path, options)

