"""Fixtures for the vLLM backend's tests: the engine's own Python, the real models, one server using them.

The test process runs in the server's environment (no torch, no vLLM). The engine lives in its own environment,
found through ``LOCALAI_PYTHON_VLLM`` or an installed backend environment; without one these tests fail when
``LOCALAI_TEST_STRICT`` is set (scripts/test.sh sets it) and are skipped otherwise, saying how to provide it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from localai.testing import ServerProcess
from localai.testing.fixtures import engine_python_fixture, gemma_hf, linked_models_folder, minilm, st_encode  # noqa: F401 - shared fixtures
from localai.testing.models import gemma_vision_vllm

ENV = "LOCALAI_PYTHON_VLLM"


engine_python = engine_python_fixture("vllm", "vllm, localai_vllm, transformers, sentence_transformers")


@pytest.fixture(scope="session")
def gemma_vision_hf(engine_python: str) -> Path:
    """The tiny Gemma 3 vision model (real 270M text weights, random 2-layer SigLIP tower) as vLLM serves it."""
    return gemma_vision_vllm(engine_python)


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory, engine_python: str, gemma_hf: Path,
                minilm: Path, gemma_vision_hf: Path) -> Iterator[ServerProcess]:
    links = {"gemma-hf": gemma_hf, "minilm": minilm, "gemma-vision": gemma_vision_hf}
    folder = linked_models_folder(tmp_path_factory, "vllm-models", links, {
        # float32: batched greedy equals solo only there (a CPU with native bf16 gets bf16 by default, and bf16 matmuls
        # round differently at different batch sizes, so near-ties flip; vLLM itself promises no batch invariance).
        "gv.yaml": "name: gv\nbackend: vllm\ncontext_size: 1024\nenforce_eager: true\ndtype: float32\n"
                   "options: ['kv_cache_space:1']\nparameters:\n  model: gemma-hf\n  temperature: 0\n",
        # No model_impl: the backend picks vLLM's Transformers modeling backend itself, as vLLM's Gemma 3 vision
        # class cannot be imported without torchvision (which vLLM's CPU torch cannot have beside it).
        "gvis.yaml": "name: gvis\nbackend: vllm\ncontext_size: 1024\nenforce_eager: true\ndtype: float32\n"
                     "options: ['kv_cache_space:1']\nparameters:\n  model: gemma-vision\n  temperature: 0\n",
        "mini.yaml": "name: mini\nbackend: vllm\nembeddings: true\nenforce_eager: true\n"
                     "options: ['kv_cache_space:1']\nparameters:\n  model: minilm\n",
        "typo.yaml": "name: typo\nbackend: vllm\nengine_args: {enable_prefix_cachin: true}\nmystery_knob: 1\n"
                     "parameters:\n  model: gemma-hf\n",
        "gone.yaml": "name: gone\nbackend: vllm\nparameters:\n  model: no-such-folder\n",
    })
    env = {ENV: engine_python, "HF_HUB_OFFLINE": "1"}
    # The three engines start at once (--preload-models starts each load as its own task): a vLLM engine start
    # is mostly single-threaded Python in three processes, so side by side on 2 cores they take about as long
    # as the slowest one alone, where one after another they took 4.5 minutes.
    with ServerProcess(folder, env=env, args=["--preload-models", "gv,mini,gvis"]) as srv:
        yield srv
