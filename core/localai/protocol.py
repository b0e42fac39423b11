"""The model protocol: what the object a plugin's ``load_model`` returns may implement.

A plugin whose model class implements these methods writes only ``register_backends``,
``parse_options`` and ``load_model``: the core's fallback hooks (:mod:`localai.registry.fallbacks`,
registered ``trylast``) call the methods below for ``generate``, ``embed``, ``tokenize``,
``detokenize`` and ``unload_model``. A plugin may still implement any of those hooks itself;
its implementation runs first and the fallback only answers when every plugin returned ``None``.

A method the model does not have is a capability it lacks: the fallback raises
:class:`NotImplementedError` naming the method, which the API answers with a 400.
Everything here runs in the model's worker process, one model per process.
(Not to be confused with :mod:`localai.runtime.worker.protocol`, the server-worker wire format.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

from localai.types import EmbeddingResult, GenerateRequest, GenerationChunk, ImageRequest, ImageResult, ModelInfo


@runtime_checkable
class Model(Protocol):
    """A loaded model. Implement the methods your engine supports; leave the others out."""

    def info(self) -> ModelInfo:
        """What the core needs to know: backend, architecture, context size, chat template, BOS/EOS,
        embedding size, ``supports_grammar``, ``vision``, ``renders_chat``. Called once after loading."""
        ...

    def generate(self, request: GenerateRequest, cancelled: Callable[[], bool]) -> Iterator[GenerationChunk]:
        """Stream the completion of ``request.prompt`` (already rendered from the chat unless
        ``info().renders_chat``).

        Raise request errors (``ValueError``: prompt too long; ``NotImplementedError``: a
        ``request.constraint`` or option the engine cannot honour) *before* the first chunk, i.e.
        validate eagerly and return a generator, so the API can still answer 400.
        Yield text chunks with ``tokens`` = tokens they stand for; the last chunk carries
        ``finish_reason`` (``stop``/``length``/``cancelled``), ``usage`` and, for a stop string,
        ``stop_sequence``; stop strings never appear in the text. Poll ``cancelled()`` between tokens.
        May be called from several threads at once: serialise inside if the engine needs it.
        """
        ...

    def embed(self, inputs: list[str] | list[list[int]]) -> EmbeddingResult:
        """One pooled vector per input (text or token ids), in order, plus the prompt token count."""
        ...

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        """Token ids of ``text``; with ``add_special`` the BOS (etc.) the engine adds to prompts."""
        ...

    def detokenize(self, tokens: list[int]) -> str:
        """The text of ``tokens``; ``detokenize(tokenize(t, False)) == t``."""
        ...

    def close(self) -> None:
        """Free the engine's resources; called once before the worker exits. Make it idempotent."""
        ...


@runtime_checkable
class ImageModel(Protocol):
    """A loaded image model (the ``image`` capability): ``info()`` sets ``image`` and ``img2img``."""

    def info(self) -> ModelInfo:
        ...

    def generate_image(self, request: ImageRequest, cancelled: Callable[[], bool]) -> ImageResult:
        """Image models only: ``request.n`` base64 PNGs (see :func:`localai.hookspecs.generate_image`);
        poll ``cancelled()`` between denoising steps and return ``finish_reason="cancelled"`` once it is set."""
        ...

    def close(self) -> None:
        ...


# hook name -> (model method, what the method gives the caller, the method's signature for messages)
METHODS: dict[str, tuple[str, str, str]] = {
    "generate": ("generate", "generate text", "generate(request, cancelled) -> Iterator[GenerationChunk]"),
    "embed": ("embed", "compute embeddings", "embed(inputs) -> EmbeddingResult"),
    "tokenize": ("tokenize", "tokenize text", "tokenize(text, add_special) -> list[int]"),
    "detokenize": ("detokenize", "detokenize tokens", "detokenize(tokens) -> str"),
    "count_prompt_tokens": ("count_prompt_tokens", "count the tokens of a prompt with images",
                            "count_prompt_tokens(request: dict) -> int"),
    "generate_image": ("generate_image", "generate images",
                       "generate_image(request, cancelled) -> ImageResult"),
    "unload_model": ("close", "release its resources", "close() -> None"),
}


def missing_method(model: Any, hook: str, method: str) -> NotImplementedError:
    """The error for a model object lacking ``method``: what it cannot do, and how an author adds it."""
    what, signature = METHODS.get(hook, (method, f"answer {hook}", f"{method}(...)"))[1:]
    backend = getattr(getattr(model, "config", None), "backend", None) or type(model).__module__.split(".")[0]
    return NotImplementedError(
        f"this model's backend ({backend}) cannot {what}: its model object {type(model).__name__} has no "
        f"{method}() method (plugin authors: implement {signature} on it, see localai.protocol.Model, "
        f"or a {hook!r} hook)"
    )


def call_method(model: Any, hook: str, method: str, *args: Any) -> Any:
    """``model.method(*args)``, or :class:`NotImplementedError` saying which method is missing."""
    fn = getattr(model, method, None)
    if fn is None or not callable(fn):
        raise missing_method(model, hook, method)
    return fn(*args)
