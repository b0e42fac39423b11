"""The model protocol's fallback hooks: a model's methods answer the per-model hooks unless a plugin does."""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest
from localai import hookimpl, hookspecs
from localai.protocol import Model
from localai.registry import fallbacks
from localai.registry.plugins import PluginManager
from localai.types import EmbeddingResult, GenerateRequest, GenerationChunk, ModelInfo


class Full:
    """Implements the whole protocol; records calls."""

    def __init__(self) -> None:
        self.closed = 0

    def info(self) -> ModelInfo:
        return ModelInfo(backend="full")

    def generate(self, request: GenerateRequest, cancelled) -> Iterator[GenerationChunk]:  # type: ignore[no-untyped-def]
        yield GenerationChunk(text=f"{request.prompt}!", tokens=1, finish_reason="stop")

    def embed(self, inputs: list[str]) -> EmbeddingResult:
        return EmbeddingResult(vectors=[[1.0] for _ in inputs], prompt_tokens=len(inputs))

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        return [1, 2] if add_special else [2]

    def detokenize(self, tokens: list[int]) -> str:
        return "x" * len(tokens)

    def close(self) -> None:
        self.closed += 1


class Bare:
    """Only ``info``: can do nothing else."""

    def info(self) -> ModelInfo:
        return ModelInfo(backend="bare")


def request(prompt: str = "hi") -> GenerateRequest:
    return GenerateRequest(model="m", prompt=prompt)


def test_fallbacks_call_the_model_methods() -> None:
    pm = PluginManager()
    model = Full()
    chunks = list(pm.hook.generate(model=model, request=request("hey"), cancelled=lambda: False))
    assert [c.text for c in chunks] == ["hey!"]
    assert pm.hook.embed(model=model, inputs=["a", "b"]).vectors == [[1.0], [1.0]]
    assert pm.hook.tokenize(model=model, text="t", add_special=True) == [1, 2]
    assert pm.hook.tokenize(model=model, text="t", add_special=False) == [2]
    assert pm.hook.detokenize(model=model, tokens=[5, 6, 7]) == "xxx"
    pm.hook.unload_model(model=model)
    assert model.closed == 1
    assert isinstance(model, Model) and not isinstance(Bare(), Model)


@pytest.mark.parametrize("hook,args,method", [
    ("generate", {"request": request(), "cancelled": lambda: False}, "generate"),
    ("embed", {"inputs": ["a"]}, "embed"),
    ("tokenize", {"text": "a", "add_special": False}, "tokenize"),
    ("detokenize", {"tokens": [1]}, "detokenize"),
])
def test_missing_method_is_not_implemented_naming_it(hook: str, args: dict, method: str) -> None:
    """A 400 at the API (NotImplementedError -> unsupported) that tells the author which method to add."""
    pm = PluginManager()
    with pytest.raises(NotImplementedError) as err:
        getattr(pm.hook, hook)(model=Bare(), **args)
    msg = str(err.value)
    assert f"no {method}() method" in msg and "Bare" in msg and "localai.protocol.Model" in msg


def test_model_without_close_unloads_quietly() -> None:
    PluginManager().hook.unload_model(model=Bare())


def test_a_plugin_hook_runs_first_and_wins() -> None:
    @hookimpl
    def generate(model, request, cancelled):  # type: ignore[no-untyped-def]
        if isinstance(model, Full):
            return iter([GenerationChunk(text="from the plugin", finish_reason="stop")])
        return None

    @hookimpl
    def tokenize(model, text, add_special):  # type: ignore[no-untyped-def]
        return None  # not ours: the fallback answers

    pm = PluginManager()
    pm.add_plugin(types.SimpleNamespace(generate=generate, tokenize=tokenize), "mine")  # registered after the fallbacks
    chunks = list(pm.hook.generate(model=Full(), request=request(), cancelled=lambda: False))
    assert [c.text for c in chunks] == ["from the plugin"]
    assert pm.hook.tokenize(model=Full(), text="t", add_special=True) == [1, 2]


def test_fallbacks_are_not_a_listed_plugin() -> None:
    pm = PluginManager()
    assert "localai.registry.fallbacks" not in pm.infos and pm.is_registered(fallbacks)


def test_delegating_takes_the_spec_signature() -> None:
    """What lets a new per-model hook (e.g. generate_image) get a fallback in one line."""
    def generate_thing(model, request, cancelled):  # type: ignore[no-untyped-def]  # a stand-in hookspec
        """Spec."""

    impl = fallbacks.delegating(generate_thing)
    from pluggy._hooks import varnames  # what pluggy validates and calls with

    assert varnames(impl)[0] == ("model", "request", "cancelled")
    assert varnames(fallbacks.unload_model)[0] == ("model",)
    assert impl(types.SimpleNamespace(generate_thing=lambda r, c: (r, c)), "req", "can") == ("req", "can")
    with pytest.raises(TypeError, match="first argument"):
        fallbacks.delegating(hookspecs.register_backends)

