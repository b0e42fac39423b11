"""vLLM against the backend contract (localai.testing.BackendConformance), on the CPU build here.

Gemma 3 270M as an HF folder (written from the PyPI GGUF once, cached) and MiniLM as a pooling model; eager mode
and a 1 GiB KV cache keep each engine's start-up short. Marked slow: the class starts about five engines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from localai.testing import BackendConformance, engine_python_or_skip, gemma_hf_folder, minilm_folder
from localai.testing.models import gemma_vision_vllm

pytestmark = [pytest.mark.slow, pytest.mark.engine]


class TestVLLMConformance(BackendConformance):
    backend = "vllm"
    aliases = ("vllm-cpu",)
    model = {"context_size": 512, "enforce_eager": True, "options": ["kv_cache_space:1"], "parameters": {"model": "gemma-hf"}}
    embeddings_model = {"embeddings": True, "enforce_eager": True, "options": ["kv_cache_space:1"],
                        "parameters": {"model": "minilm"}}
    capabilities = ("chat", "completion", "embeddings", "tokenize", "grammar", "vision")
    # The tiny Gemma 3 vision model (localai.testing.models.gemma_vision_vllm), served by vLLM's Transformers modeling
    # backend (the backend chooses it: vLLM's own Gemma 3 vision class needs torchvision).
    vision_model = {"context_size": 1024, "enforce_eager": True, "dtype": "float32", "options": ["kv_cache_space:1"],
                    "parameters": {"model": "gemma-vision"}}
    image_tokens = 68  # "\n\n" <start_of_image> + 64 soft tokens + <end_of_image> "\n\n", expanded in the token ids
    normalized_embeddings = True
    engine_modules = ("torch", "vllm", "transformers")
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    timeout = 600

    @classmethod
    def model_files(cls) -> dict[str, Path]:
        python = engine_python_or_skip("vllm")
        return {"gemma-hf": gemma_hf_folder(python), "minilm": minilm_folder(), "gemma-vision": gemma_vision_vllm(python)}
