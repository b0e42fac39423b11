"""Backend ``envtest``: answers every prompt with its greeting and the worker's ``sys.prefix``.

Its option table (``greeting``, ``repeat``) is what the server parses from ``metadata.json`` without importing this
module; ``parse_options`` here runs again in the worker and upper-cases the greeting, so a test sees both ran.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

from localai import hookimpl
from localai.options import OptionSpec, parse_option_list
from localai.types import GenerateRequest, GenerationChunk, ModelInfo, Usage

BACKEND = "envtest"
OPTIONS = [
    OptionSpec("greeting", "str", "what every answer starts with", default="hello"),
    OptionSpec("repeat", "int", "how many times to say it", default=1, aliases=("times",)),
]


class EnvTestModel:
    def __init__(self, greeting: str, repeat: int) -> None:
        self.greeting = greeting
        self.repeat = repeat

    def info(self) -> ModelInfo:
        return ModelInfo(backend=BACKEND, architecture="envtest", context_size=64)


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register(BACKEND, aliases=("env-echo",), capabilities=("chat", "completion"), formats=("envtest",),
             description="environment test backend", options=OPTIONS)


@hookimpl
def parse_options(backend: str, options: list[str], config: Any) -> dict[str, Any] | None:
    if backend != BACKEND:
        return None
    parsed = parse_option_list(options, OPTIONS)
    parsed["greeting"] = str(parsed["greeting"]).upper()
    return parsed


@hookimpl
def load_model(backend: str, config: Any, model_path: str | None, options: dict[str, Any]) -> Any:
    if backend != BACKEND:
        return None
    return EnvTestModel(options.get("greeting", "?"), int(options.get("repeat", 1)))


@hookimpl
def generate(model: Any, request: GenerateRequest, cancelled: Callable[[], bool]) -> Iterator[GenerationChunk] | None:
    if not isinstance(model, EnvTestModel):
        return None
    text = " ".join([model.greeting] * model.repeat) + f" prefix={sys.prefix}"
    return iter([GenerationChunk(text=text, tokens=1),
                 GenerationChunk(finish_reason="stop", usage=Usage(prompt_tokens=1, completion_tokens=1))])
