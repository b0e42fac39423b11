"""Embedding models: a sentence-transformers pipeline as its modules say, or a plain transformers model whose
hidden states are pooled (mean over the attention mask by default) and L2-normalised. Worker-side only."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import torch
from localai.types import EmbeddingResult, ModelInfo

from localai_transformers.base import TransformersModel
from localai_transformers.options import AUTOMODEL, SENTENCE
from localai_transformers.source import Source, model_class

BATCH = 64


class Embedder(TransformersModel):
    """Shared by the embedding types: token-id inputs are detokenized, requests run one at a time."""

    dimension: int | None = None

    def __init__(self, tokenizer: Any, config: Any, options: dict[str, Any], backend: str, device: str) -> None:
        super().__init__(tokenizer, config, options, backend, device)
        self.lock = threading.Lock()

    def texts(self, inputs: list[Any]) -> list[str]:
        return [x if isinstance(x, str) else self.detokenize(list(x)) for x in inputs]

    def count_tokens(self, texts: list[str], max_length: int | None) -> int:
        enc = self.tokenizer(texts, truncation=max_length is not None, max_length=max_length)
        return sum(len(ids) for ids in enc["input_ids"])

    def info(self) -> ModelInfo:
        return super().info().model_copy(update={"embedding_size": self.dimension})


class SentenceEmbedder(Embedder):
    kind = SENTENCE

    def __init__(self, model: Any, config: Any, options: dict[str, Any], backend: str, device: str) -> None:
        super().__init__(model.tokenizer, config, options, backend, device)
        self.model = model
        self.dimension = model.get_sentence_embedding_dimension()

    @classmethod
    def load(cls, source: Source, config: Any, options: dict[str, Any], backend: str, device: str, dtype: Any,
             trust: bool) -> SentenceEmbedder:
        if source.gguf_file:
            raise ValueError(f"type {SENTENCE} loads a sentence-transformers folder or hub id, not a .gguf file")
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(source.path, device=device, trust_remote_code=trust, model_kwargs={"dtype": dtype})
        return cls(model, config, options, backend, device)

    def embed(self, inputs: list[Any]) -> EmbeddingResult:
        texts = self.texts(inputs)
        with self.lock:
            vectors = self.model.encode(texts, batch_size=BATCH, convert_to_numpy=True, show_progress_bar=False)
        tokens = self.count_tokens(texts, self.model.max_seq_length)
        return EmbeddingResult(vectors=vectors.tolist(), prompt_tokens=tokens)  # float32 values, as they travel

    def info(self) -> ModelInfo:
        base = super().info()
        return base.model_copy(update={"context_size": self.model.max_seq_length,
                                       "architecture": getattr(self.model[0].auto_model.config, "model_type", None)})


def folder_normalizes(path: str) -> bool | None:
    """Whether a sentence-transformers folder's modules end in Normalize; ``None`` when it has no modules.json."""
    modules = Path(path, "modules.json")
    if not modules.is_file():
        return None
    try:
        return any(m.get("type", "").endswith(".Normalize") for m in json.loads(modules.read_text()))
    except (OSError, ValueError, AttributeError):
        return None


class PooledEmbedder(Embedder):
    """``embeddings: true`` on a plain transformers model: pool the last hidden state, then normalise."""

    def __init__(self, model: Any, tokenizer: Any, config: Any, options: dict[str, Any], backend: str, device: str,
                 kind: str, normalize: bool) -> None:
        super().__init__(tokenizer, config, options, backend, device)
        self.model = model
        self.kind = kind
        self.normalize = normalize
        self.pooling = options.get("pooling", "mean")
        mc = model.config
        self.dimension = getattr(mc, "hidden_size", None)
        limit = getattr(tokenizer, "model_max_length", None)
        positions = getattr(mc, "max_position_embeddings", None)
        self.max_length = min(x for x in (limit, positions, config.context_size, 1 << 20) if x)

    @classmethod
    def load(cls, kind: str, source: Source, config: Any, options: dict[str, Any], backend: str, device: str,
             dtype: Any, trust: bool) -> PooledEmbedder:
        from transformers import AutoTokenizer

        kind = AUTOMODEL if kind is None else kind
        kwargs = {"trust_remote_code": trust, **source.kwargs()}
        tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
        model = model_class(kind).from_pretrained(source.path, dtype=dtype, **kwargs).to(device).eval()
        normalize = options.get("normalize")
        if normalize is None:
            shipped = None if source.hub or source.gguf_file else folder_normalizes(source.path)
            normalize = True if shipped is None else shipped
        return cls(model, tokenizer, config, options, backend, device, kind, bool(normalize))

    def info(self) -> ModelInfo:
        return super().info().model_copy(update={"context_size": self.max_length,
                                                 "architecture": getattr(self.model.config, "model_type", None)})

    def embed(self, inputs: list[Any]) -> EmbeddingResult:
        texts = self.texts(inputs)
        vectors: list[list[float]] = []
        tokens = 0
        with self.lock, torch.inference_mode():
            for start in range(0, len(texts), BATCH):
                enc = self.tokenizer(texts[start:start + BATCH], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.tensor_device)
                out = self.model(**enc, output_hidden_states=True)
                hidden = getattr(out, "last_hidden_state", None)
                if hidden is None:
                    hidden = out.hidden_states[-1]
                mask = enc["attention_mask"]
                tokens += int(mask.sum())
                pooled = pool(hidden.float(), mask, self.pooling, getattr(self.tokenizer, "padding_side", "right"))
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                vectors.extend(pooled.double().tolist())
        return EmbeddingResult(vectors=vectors, prompt_tokens=tokens)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str, padding_side: str) -> torch.Tensor:
    if how == "cls":
        return hidden[:, 0]
    if how == "last":
        if padding_side == "left":
            return hidden[:, -1]
        last = mask.sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
