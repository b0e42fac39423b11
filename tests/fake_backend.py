"""A throw-away backend for core and protocol tests (loaded with ``LOCALAI_PLUGINS=fake_backend``).

It "generates" by echoing the prompt's words back one per chunk, slowly when asked, and writes
what happened (cancellations) to ``$FAKE_BACKEND_LOG`` so tests can see inside the worker.
Never a stand-in for a real backend's own tests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from fake_plugin_common import log, number_options
from localai import hookimpl
from localai.types import EmbeddingResult, GenerateRequest, GenerationChunk, ModelInfo, Usage


class FakeModel:
    def __init__(self, name: str, delay: float, image_placeholder: str | None = None) -> None:
        self.name = name
        self.delay = delay
        self.image_placeholder = image_placeholder  # a YAML's fake_image_placeholder: the model "takes images"

    def info(self) -> ModelInfo:
        return ModelInfo(backend="fake", architecture="fake", context_size=128, supports_grammar=False,
                         vision=self.image_placeholder is not None, image_placeholder=self.image_placeholder)


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register("fake", aliases=("fake_backend", "Fake.Echo"), capabilities=("chat", "completion", "embeddings", "tokenize"),
             formats=("fake",), description="echo backend for tests", yaml_fields=("fake_knob", "fake_engine_failure", "fake_image_placeholder"))


@hookimpl
def parse_options(backend: str, options: list[str], config: Any) -> dict[str, Any] | None:
    if backend != "fake":
        return None
    return number_options(options, ("delay", "load_delay"))


@hookimpl
def load_model(backend: str, config: Any, model_path: str | None, options: dict[str, Any]) -> Any:
    if backend != "fake":
        return None
    if model_path and not os.path.exists(model_path):
        raise FileNotFoundError(f"model file {model_path} does not exist")
    time.sleep(float(options.get("load_delay", 0.0)))  # a slow load, for preload and readiness tests
    failure = (config.model_extra or {}).get("fake_engine_failure")
    if failure:  # as vLLM's engine core: a child process prints the real reason, the load says only that it failed
        import subprocess
        import sys

        code = f"import sys; sys.stderr.write('Traceback (most recent call last):\\n  File x\\nValueError: {failure}\\n')"
        subprocess.run([sys.executable, "-c", code], check=False)
        raise RuntimeError("engine core initialization failed; see the root cause above")
    return FakeModel(config.name, float(options.get("delay", 0.0)), (config.model_extra or {}).get("fake_image_placeholder"))


@hookimpl
def generate(model: Any, request: GenerateRequest, cancelled: Callable[[], bool]) -> Iterator[GenerationChunk] | None:
    if not isinstance(model, FakeModel):
        return None
    return _echo(model, request, cancelled)


def _echo(model: FakeModel, request: GenerateRequest, cancelled: Callable[[], bool]) -> Iterator[GenerationChunk]:
    prompt = request.prompt if isinstance(request.prompt, str) else " ".join(map(str, request.prompt or []))
    words = prompt.split()
    limit = request.max_tokens or len(words)
    n = 0
    for word in words[:limit]:
        if cancelled():
            log(f"cancelled {request.model} after {n}")
            yield GenerationChunk(finish_reason="cancelled", usage=Usage(prompt_tokens=len(words), completion_tokens=n))
            return
        time.sleep(model.delay)
        n += 1
        yield GenerationChunk(text=word + " ", tokens=1)
    reason = "length" if limit < len(words) else "stop"
    yield GenerationChunk(finish_reason=reason, usage=Usage(prompt_tokens=len(words), completion_tokens=n))


@hookimpl
def unload_model(model: Any) -> None:
    if isinstance(model, FakeModel):
        log(f"unloaded {model.name}")


@hookimpl
def embed(model: Any, inputs: list[Any]) -> EmbeddingResult | None:
    if not isinstance(model, FakeModel):
        return None
    return EmbeddingResult(vectors=[[float(len(str(x))), 1.0] for x in inputs], prompt_tokens=len(inputs))


@hookimpl
def tokenize(model: Any, text: str, add_special: bool) -> list[int] | None:
    return [len(w) for w in text.split()] if isinstance(model, FakeModel) else None
