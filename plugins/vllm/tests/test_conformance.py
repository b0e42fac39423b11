"""vLLM against the backend contract (localai.testing.BackendConformance), on the CPU build here.

Gemma 3 270M as an HF folder (written from the PyPI GGUF once, cached) and MiniLM as a pooling model; eager mode
and a 1 GiB KV cache keep each engine's start-up short. Marked slow: the class starts about five engines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from localai.testing import BackendConformance, engine_python_or_skip, gemma_hf_folder, minilm_folder

pytestmark = [pytest.mark.slow, pytest.mark.engine]


class TestVLLMConformance(BackendConformance):
    backend = "vllm"
    aliases = ("vllm-cpu",)
    model = {"context_size": 512, "enforce_eager": True, "options": ["kv_cache_space:1"], "parameters": {"model": "gemma-hf"}}
    embeddings_model = {"embeddings": True, "enforce_eager": True, "options": ["kv_cache_space:1"],
                        "parameters": {"model": "minilm"}}
    capabilities = ("chat", "completion", "embeddings", "tokenize", "grammar")
    normalized_embeddings = True
    engine_modules = ("torch", "vllm", "transformers")
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    timeout = 600

    @classmethod
    def model_files(cls) -> dict[str, Path]:
        return {"gemma-hf": gemma_hf_folder(engine_python_or_skip("vllm")), "minilm": minilm_folder()}
