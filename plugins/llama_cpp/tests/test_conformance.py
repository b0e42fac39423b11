"""llama-cpp against the backend contract (localai.testing.BackendConformance) on Gemma 3 270M."""

from __future__ import annotations

from pathlib import Path

import pytest
from localai.testing import GGUF_NAME, BackendConformance, default_gguf


@pytest.mark.engine
class TestLlamaCppConformance(BackendConformance):
    backend = "llama-cpp"
    aliases = ("llama", "llama.cpp", "llamacpp")
    # repack off: the contract's "same greedy text whatever the cache and the batch" holds only with unrepacked
    # weights (repacked kernels, llama.cpp's single-slot default, round batch rows differently).
    model = {"context_size": 512, "threads": 1, "options": ["repack:false"], "parameters": {"model": GGUF_NAME}}
    embeddings_model = {"context_size": 256, "threads": 1, "embeddings": True, "parameters": {"model": GGUF_NAME}}
    capabilities = ("chat", "completion", "embeddings", "tokenize", "grammar")
    normalized_embeddings = True
    engine_modules = ("llama_cpp",)

    @classmethod
    def model_files(cls) -> dict[str, Path]:
        return {GGUF_NAME: default_gguf()}
