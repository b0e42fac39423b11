"""transformers against the backend contract (localai.testing.BackendConformance).

Generation on Gemma 3 270M as an HF folder (dequantized from the PyPI GGUF once, cached beside it), embeddings on
all-MiniLM-L6-v2 through sentence-transformers. The backend runs in its own environment, found the way the server
finds it (``LOCALAI_BACKENDS_PATH`` or ``LOCALAI_PYTHON_TRANSFORMERS``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from localai.testing import BackendConformance, engine_python_or_skip, gemma_hf_folder, minilm_folder
from localai.testing.models import gemma_vision


@pytest.mark.engine
class TestTransformersConformance(BackendConformance):
    backend = "transformers"
    aliases = ("sentencetransformers", "huggingface-embeddings")
    model = {"context_size": 512, "parameters": {"model": "gemma-hf"}}
    embeddings_model = {"type": "SentenceTransformer", "embeddings": True, "parameters": {"model": "minilm"}}
    capabilities = ("chat", "completion", "embeddings", "tokenize", "grammar", "vision")
    # The tiny Gemma 3 vision model (localai.testing.models.gemma_vision) as an HF folder: its processor resizes the
    # images; found as image-text-to-text by its config's vision_config, so no type: is needed.
    vision_model = {"context_size": 1024, "parameters": {"model": "gemma-vision-hf"}}
    image_tokens = 67  # the processor's image sequence: "\n\n<start_of_image>" + 64 soft tokens + "<end_of_image>\n\n"
    normalized_embeddings = True
    engine_modules = ("torch", "transformers", "sentence_transformers")
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    timeout = 300

    @classmethod
    def model_files(cls) -> dict[str, Path]:
        python = engine_python_or_skip("transformers")
        return {"gemma-hf": gemma_hf_folder(python), "minilm": minilm_folder(), "gemma-vision-hf": gemma_vision(python)[0]}
