"""What every transformers model object shares: the model protocol (info/generate/embed/tokenize/detokenize/close)
and tokenizer-backed token methods. Worker-side only; subclasses import the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from localai.types import EmbeddingResult, GenerateRequest, GenerationChunk, ModelInfo


class TransformersModel:
    """One loaded model and its tokenizer. Subclasses implement what they can serve; the rest refuse clearly."""

    kind = "model"

    def __init__(self, tokenizer: Any, config: Any, options: dict[str, Any], backend: str, device: str) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.options = options
        self.backend = backend
        self.device = device
        # where input tensors live: the torch device, or the host for OpenVINO devices (AUTO, GPU.0, ...)
        self.tensor_device = device if device == "cpu" or device.startswith("cuda") else "cpu"

    @property
    def name(self) -> str:
        return self.config.name

    def info(self) -> ModelInfo:
        tok = self.tokenizer
        return ModelInfo(backend=self.backend, bos_token=getattr(tok, "bos_token", None),
                         eos_token=getattr(tok, "eos_token", None), extra={"type": self.kind, "device": self.device})

    # -- tokens -------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special)["input_ids"])

    def check_tokens(self, tokens: list[int]) -> list[int]:
        n = self.vocab_size
        bad = [t for t in tokens if not 0 <= int(t) < n]
        if bad:
            raise ValueError(f"token id(s) {bad[:5]} out of range: this model's vocabulary has {n} tokens (0..{n - 1})")
        return [int(t) for t in tokens]

    def detokenize(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(self.check_tokens(tokens), skip_special_tokens=True)

    # -- what a subclass may not serve ---------------------------------------------------------

    def generate(self, request: GenerateRequest, cancelled: Callable[[], bool]) -> Iterator[GenerationChunk]:
        raise NotImplementedError(f"model {self.name!r} (type {self.kind}) serves embeddings and cannot generate text")

    def embed(self, inputs: list[Any]) -> EmbeddingResult:
        raise NotImplementedError(f"model {self.name!r} was not loaded for embeddings; set embeddings: true in its YAML")

    def close(self) -> None:
        """Drop the engine objects so their memory can go before the worker exits."""
        for attr in ("model", "tokenizer"):
            if hasattr(self, attr):
                setattr(self, attr, None)
