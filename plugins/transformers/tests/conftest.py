"""Fixtures for the transformers backend's tests: the engine's own Python, real models, and servers using it.

The test process runs in the server's environment, which has no torch: the engine lives in its own
environment (``localai.testing.backend_python``: ``LOCALAI_PYTHON_TRANSFORMERS`` or the environment installed under
``LOCALAI_BACKENDS_PATH``). Without one
the engine tests fail when ``LOCALAI_TEST_STRICT`` is set (scripts/test.sh sets it) and are skipped otherwise, saying how to provide it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from localai.testing import ServerProcess, default_gguf
from localai.testing.fixtures import engine_python_fixture, gemma_hf, minilm, st_encode  # noqa: F401 - shared fixtures
from localai.testing.models import gemma_vision

ENV = "LOCALAI_PYTHON_TRANSFORMERS"


engine_python = engine_python_fixture(
    "transformers", "torch, transformers, sentence_transformers, llguidance, localai, localai_transformers", timeout=300)


def link(folder: Path, name: str, target: Path) -> None:
    if not (folder / name).exists():
        (folder / name).symlink_to(target)


@pytest.fixture(scope="module")
def models_folder(tmp_path_factory: pytest.TempPathFactory, gemma_hf: Path, minilm: Path, engine_python: str) -> Path:
    folder = tmp_path_factory.mktemp("transformers-models")
    link(folder, "gemma-hf", gemma_hf)
    link(folder, "minilm", minilm)
    link(folder, "gemma.gguf", default_gguf())
    link(folder, "gemma-vision-hf", gemma_vision(engine_python)[0])
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
        "gemma-serial.yaml": "name: gemma-serial\nbackend: transformers\ncontext_size: 1024\noptions: [\"parallel:1\"]\n"
                              "parameters:\n  model: gemma-hf\n  temperature: 0\n",
        "gemma-p1.yaml": "name: gemma-p1\nbackend: transformers\ncontext_size: 1024\noptions: [\"parallel:1\", "
                         "\"queue_size:0\"]\nparameters:\n  model: gemma-hf\n  temperature: 0\n",
        "gemma-p2.yaml": "name: gemma-p2\nbackend: transformers\ncontext_size: 1024\noptions: [\"parallel:2\", "
                         "\"queue_size:0\"]\nparameters:\n  model: gemma-hf\n  temperature: 0\n",
        "gemma-chunks.yaml": "name: gemma-chunks\nbackend: transformers\ncontext_size: 1024\n"
                             "options: [\"prefill_chunk_size:64\"]\nparameters:\n  model: gemma-hf\n  temperature: 0\n",
        "minilm.yaml": "name: minilm\nbackend: sentencetransformers\nembeddings: true\nparameters:\n  model: minilm\n",
        "minilm-pooled.yaml": "name: minilm-pooled\nbackend: transformers\ntype: AutoModel\nembeddings: true\n"
                              "parameters:\n  model: minilm\n",
        "bad-type.yaml": "name: bad-type\nbackend: transformers\ntype: NoSuchModelClass\nparameters:\n  model: gemma-hf\n",
        "vision-typed.yaml": "name: vision-typed\nbackend: transformers\ntype: AutoModelForImageTextToText\ncontext_size: 1024\n"
                             "parameters:\n  model: gemma-vision-hf\n  temperature: 0\n",
        "vision-gguf.yaml": "name: vision-gguf\nbackend: transformers\ntype: image-text-to-text\nparameters:\n  model: gemma.gguf\n",
        "bad-gpu.yaml": "name: bad-gpu\nbackend: transformers\nmain_gpu: cuda.3\nparameters:\n  model: gemma-hf\n",
        "bad-quant.yaml": "name: bad-quant\nbackend: transformers\nquantization: bnb_4bit\nparameters:\n  model: gemma-hf\n",
        "ov-on-plain.yaml": "name: ov-on-plain\nbackend: transformers\ntype: OVModelForCausalLM\nparameters:\n  model: gemma-hf\n",
        "missing.yaml": "name: missing\nbackend: transformers\nparameters:\n  model: no-such-folder/sub/model\n",
        "hub.yaml": "name: hub\nbackend: transformers\nparameters:\n  model: google/gemma-3-270m\n",
    }
    with serve(models_folder, engine_python, yamls) as srv:
        yield srv
