"""The diffusers backend, declared: names, capabilities, option table and parser here; diffusers loads only in
``DiffusersModel.load``, in the worker."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable

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
        parse=parse,
        load="localai_diffusers.model:DiffusersModel.load",
    )
