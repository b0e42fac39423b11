"""ik-llama-cpp against the backend contract (localai.testing.BackendConformance) on Gemma 3 270M."""

from __future__ import annotations

from pathlib import Path

import pytest
from localai.testing import GGUF_NAME, BackendConformance, default_gguf
from localai_ik_llama.plugin import capabilities


@pytest.mark.engine
class TestIkLlamaConformance(BackendConformance):
    backend = "ik-llama-cpp"
    aliases = ("ik_llama", "ik-llama")
    model = {"context_size": 512, "threads": 1, "parameters": {"model": GGUF_NAME}}
    embeddings_model = {"context_size": 256, "threads": 1, "embeddings": True, "parameters": {"model": GGUF_NAME}}
    capabilities = capabilities()  # grammar only with llama-cpp-python's JSON-schema converter installed
    normalized_embeddings = True
    batch_invariant = True  # default batch_invariant: prompt reuse only where every row rounds as it would cold
    engine_modules = ("ik_llama_cpp",)

    @classmethod
    def model_files(cls) -> dict[str, Path]:
        return {GGUF_NAME: default_gguf()}
