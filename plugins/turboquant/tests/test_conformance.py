"""turboquant against the backend contract (localai.testing.BackendConformance) on Gemma 3 270M, with the fork's
turbo3 KV cache for keys and values, on the fork's build in the backend's own environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from localai.testing import GGUF_NAME, BackendConformance, default_gguf, engine_python_or_skip


@pytest.mark.engine
class TestTurboQuantConformance(BackendConformance):
    backend = "turboquant"
    aliases = ("llama-cpp-turboquant", "turbo-quant")
    model = {"context_size": 512, "threads": 1, "cache_type_k": "turbo3", "cache_type_v": "turbo3",
             "parameters": {"model": GGUF_NAME}}
    embeddings_model = {"context_size": 256, "threads": 1, "embeddings": True, "parameters": {"model": GGUF_NAME}}
    capabilities = ("chat", "completion", "embeddings", "tokenize", "grammar")
    normalized_embeddings = True
    engine_modules = ("llama_cpp",)
    batch_invariant = True  # option batch_invariant, on by default

    @classmethod
    def model_files(cls) -> dict[str, Path]:
        engine_python_or_skip("turboquant")  # the fork's build: `localai backends install turboquant`
        return {GGUF_NAME: default_gguf()}
