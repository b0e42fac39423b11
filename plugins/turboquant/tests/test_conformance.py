"""turboquant against the backend contract (localai.testing.BackendConformance) on Gemma 3 270M.

Runs on stock llama.cpp (no fork library here) with a q8_0 KV cache, the configuration this machine can serve.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from localai.testing import GGUF_NAME, BackendConformance, default_gguf


@pytest.mark.engine
class TestTurboQuantConformance(BackendConformance):
    backend = "turboquant"
    aliases = ("llama-cpp-turboquant", "turbo-quant")
    model = {"context_size": 512, "threads": 1, "cache_type_k": "q8_0", "cache_type_v": "q8_0",
             "parameters": {"model": GGUF_NAME}}
    embeddings_model = {"context_size": 256, "threads": 1, "embeddings": True, "parameters": {"model": GGUF_NAME}}
    capabilities = ("chat", "completion", "embeddings", "tokenize", "grammar")
    normalized_embeddings = True
    engine_modules = ("llama_cpp",)
    env = {"TURBOQUANT_LIB_PATH": ""}

    @classmethod
    def model_files(cls) -> dict[str, Path]:
        return {GGUF_NAME: default_gguf()}
