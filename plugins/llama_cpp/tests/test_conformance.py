"""llama-cpp against the backend contract (localai.testing.BackendConformance) on Gemma 3 270M."""

from __future__ import annotations

from pathlib import Path

import pytest
from localai.testing import GGUF_NAME, BackendConformance
from localai.testing.models import gguf_with_mmproj


@pytest.mark.engine
class TestLlamaCppConformance(BackendConformance):
    backend = "llama-cpp"
    aliases = ("llama", "llama.cpp", "llamacpp")
    # repack off: the contract's "same greedy text whatever the cache and the batch" holds only with unrepacked
    # weights (repacked kernels, llama.cpp's single-slot default, round batch rows differently).
    model = {"context_size": 512, "threads": 1, "options": ["repack:false"], "parameters": {"model": GGUF_NAME}}
    embeddings_model = {"context_size": 256, "threads": 1, "embeddings": True, "parameters": {"model": GGUF_NAME}}
    capabilities = ("chat", "completion", "embeddings", "tokenize", "grammar", "vision", "prompt_cache")
    normalized_embeddings = True
    engine_modules = ("llama_cpp",)
    batch_invariant = True  # option batch_invariant, on by default
    # The tiny Gemma 3 vision model (localai.testing.models.gemma_vision): the real 270M GGUF plus an mmproj of a
    # random 2-layer SigLIP tower; four slots, so the concurrent image checks run batched. Flash attention off: with
    # it, a prompt finished from a cached prefix gets other logits than the same prompt decoded cold (issue 34),
    # which the "image B after image A equals B cold" check would take for a cache keyed wrongly.
    vision_model = {"context_size": 2048, "threads": 1, "flash_attention": "off",
                    "options": ["repack:false", "parallel:4"], "mmproj": "mmproj.gguf", "parameters": {"model": GGUF_NAME}}
    image_tokens = 66  # 64 embeddings plus <start_of_image> and <end_of_image>, which mtmd wraps them in

    @classmethod
    def model_files(cls) -> dict[str, Path]:
        files, cls.vision_missing = gguf_with_mmproj()
        return files
