"""turboquant against the backend contract (localai.testing.BackendConformance) on Gemma 3 270M, with the fork's
turbo3 KV cache for keys and values, on the fork's build in the backend's own environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from localai.testing import GGUF_NAME, BackendConformance, engine_python_or_skip
from localai.testing.models import gguf_with_mmproj


@pytest.mark.engine
class TestTurboQuantConformance(BackendConformance):
    backend = "turboquant"
    aliases = ("llama-cpp-turboquant", "turbo-quant")
    model = {"context_size": 512, "threads": 1, "cache_type_k": "turbo3", "cache_type_v": "turbo3",
             "parameters": {"model": GGUF_NAME}}
    embeddings_model = {"context_size": 256, "threads": 1, "embeddings": True, "parameters": {"model": GGUF_NAME}}
    capabilities = ("chat", "completion", "embeddings", "tokenize", "grammar", "vision", "prompt_cache")
    normalized_embeddings = True
    engine_modules = ("llama_cpp",)
    batch_invariant = True  # option batch_invariant, on by default
    # The tiny Gemma 3 vision model (localai.testing.models.gemma_vision: the real 270M GGUF plus the mmproj of a
    # random 2-layer SigLIP tower) with a turbo3 cache, so the images' embeddings are decoded into turbo3 KV (flash
    # attention on, as the fork's turbo kernels need); four slots, so the concurrent image checks run batched.
    vision_model = {"context_size": 2048, "threads": 1, "cache_type_k": "turbo3", "cache_type_v": "turbo3",
                    "options": ["parallel:4"], "mmproj": "mmproj.gguf", "parameters": {"model": GGUF_NAME}}
    image_tokens = 66  # 64 embeddings plus <start_of_image> and <end_of_image>, which mtmd wraps them in

    @classmethod
    def model_files(cls) -> dict[str, Path]:
        engine_python_or_skip("turboquant")  # the fork's build: `localai backends install turboquant`
        files, cls.vision_missing = gguf_with_mmproj()
        return files
