"""Fixtures for the transformers backend's tests: the engine's own Python, real models, and servers using it.

The test process runs in the server's environment, which has no torch: the engine lives in its own
environment (``localai.testing.backend_python``: ``LOCALAI_PYTHON_TRANSFORMERS`` or the environment installed under
``LOCALAI_BACKENDS_PATH``). Without one
the engine tests fail when ``LOCALAI_TEST_STRICT`` is set (scripts/test.sh sets it) and are skipped otherwise, saying how to provide it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from localai.testing import ServerProcess, backend_python, default_gguf, engine_side, gemma_hf_folder, minilm_folder, missing

ENV = "LOCALAI_PYTHON_TRANSFORMERS"


def probe(python: str) -> str | None:
    """Why ``python`` cannot run this backend's workers, or ``None``."""
    code = "import torch, transformers, sentence_transformers, llguidance, localai, localai_transformers"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return None if out.returncode == 0 else (out.stderr.strip().splitlines() or ["?"])[-1]


@pytest.fixture(scope="session")
def engine_python() -> str:
    python, reason = backend_python("transformers")
    if python:
        why = probe(python)
        if why is None:
            return python
        reason = f"{python} ({reason}) cannot run the transformers backend: {why}"
    missing(reason)


@pytest.fixture(scope="session")
def gemma_hf(engine_python: str) -> Path:
    """An HF folder written from the PyPI GGUF (dequantized, ``save_pretrained``), built once and cached."""
    return gemma_hf_folder(engine_python)


@pytest.fixture(scope="session")
def minilm() -> Path:
    """all-MiniLM-L6-v2 from PyPI (a test dependency of the server's environment; the engine only reads the folder)."""
    return minilm_folder()


@pytest.fixture(scope="session")
def st_encode(engine_python: str, minilm: Path):
    """Direct sentence-transformers ``encode`` in the engine's Python: the embeddings reference."""
    def encode(texts: list[str]) -> list[list[float]]:
        return json.loads(engine_side(engine_python, "st-encode", str(minilm), stdin=json.dumps(texts)))
    return encode


def link(folder: Path, name: str, target: Path) -> None:
    if not (folder / name).exists():
        (folder / name).symlink_to(target)


@pytest.fixture(scope="module")
def models_folder(tmp_path_factory: pytest.TempPathFactory, gemma_hf: Path, minilm: Path) -> Path:
    folder = tmp_path_factory.mktemp("transformers-models")
    link(folder, "gemma-hf", gemma_hf)
    link(folder, "minilm", minilm)
    link(folder, "gemma.gguf", default_gguf())
    return folder


def serve(folder: Path, engine_python: str, yamls: dict[str, str]) -> ServerProcess:
    for name, text in yamls.items():
        (folder / name).write_text(text)
    return ServerProcess(folder, env={ENV: engine_python, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})


@pytest.fixture(scope="module")
def server(models_folder: Path, engine_python: str) -> Iterator[ServerProcess]:
    """Gemma (HF folder, GGUF), MiniLM three ways, and models that must be refused."""
    yamls = {
        "gemma.yaml": "name: gemma\nbackend: transformers\ncontext_size: 1024\nparameters:\n  model: gemma-hf\n  temperature: 0\n",
        "gemma-gguf.yaml": "name: gemma-gguf\nbackend: transformers\ntype: AutoModelForCausalLM\ncontext_size: 1024\n"
                           "parameters:\n  model: gemma.gguf\n  temperature: 0\n",
        "minilm.yaml": "name: minilm\nbackend: sentencetransformers\nembeddings: true\nparameters:\n  model: minilm\n",
        "minilm-pooled.yaml": "name: minilm-pooled\nbackend: transformers\ntype: AutoModel\nembeddings: true\n"
                              "parameters:\n  model: minilm\n",
        "bad-type.yaml": "name: bad-type\nbackend: transformers\ntype: NoSuchModelClass\nparameters:\n  model: gemma-hf\n",
        "bad-gpu.yaml": "name: bad-gpu\nbackend: transformers\nmain_gpu: cuda.3\nparameters:\n  model: gemma-hf\n",
        "bad-quant.yaml": "name: bad-quant\nbackend: transformers\nquantization: bnb_4bit\nparameters:\n  model: gemma-hf\n",
        "ov-on-plain.yaml": "name: ov-on-plain\nbackend: transformers\ntype: OVModelForCausalLM\nparameters:\n  model: gemma-hf\n",
        "missing.yaml": "name: missing\nbackend: transformers\nparameters:\n  model: no-such-folder/sub/model\n",
        "hub.yaml": "name: hub\nbackend: transformers\nparameters:\n  model: google/gemma-3-270m\n",
    }
    with serve(models_folder, engine_python, yamls) as srv:
        yield srv
