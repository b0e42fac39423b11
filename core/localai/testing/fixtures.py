"""pytest fixtures the engine backends' test suites share, written once: import them into a ``conftest.py``::

    from localai.testing.fixtures import engine_python_fixture, gemma_hf, minilm, st_encode  # noqa: F401

    engine_python = engine_python_fixture("transformers", "torch, transformers, localai_transformers")

``engine_python`` is the backend environment's interpreter (the engine lives there, never in the test process);
``gemma_hf`` the real Gemma 3 270M as an HF folder written from the PyPI GGUF by that interpreter; ``minilm`` the
real all-MiniLM-L6-v2; ``st_encode`` sentence-transformers' own vectors for texts, the embeddings reference.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from localai.testing.models import backend_python, engine_side, gemma_hf_folder, minilm_folder
from localai.testing.strict import missing


def engine_python_fixture(backend: str, imports: str, timeout: float = 600) -> Any:
    """A session fixture: ``backend``'s interpreter, checked to import ``imports``; :func:`missing` otherwise."""

    @pytest.fixture(scope="session")
    def engine_python() -> str:
        python, reason = backend_python(backend)
        if python:
            try:
                out = subprocess.run([python, "-c", f"import {imports}"], capture_output=True, text=True, timeout=timeout)
                why = None if out.returncode == 0 else (out.stderr.strip().splitlines() or ["?"])[-1]
            except (OSError, subprocess.SubprocessError) as exc:
                why = str(exc)
            if why is None:
                return python
            reason = f"{python} ({reason}) cannot run the {backend} backend: {why}"
        missing(reason)

    return engine_python


@pytest.fixture(scope="session")
def gemma_hf(engine_python: str) -> Path:
    """An HF folder written from the PyPI GGUF (dequantized, ``save_pretrained``), built once and cached."""
    return gemma_hf_folder(engine_python)


@pytest.fixture(scope="session")
def minilm() -> Path:
    """all-MiniLM-L6-v2 from PyPI (a test dependency of the server's environment; the engine only reads the folder)."""
    return minilm_folder()


@pytest.fixture(scope="session")
def st_encode(engine_python: str, minilm: Path) -> Callable[[list[str]], list[list[float]]]:
    """Direct sentence-transformers ``encode`` in the engine's Python: the embeddings reference."""
    def encode(texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = json.loads(engine_side(engine_python, "st-encode", str(minilm), stdin=json.dumps(texts)))
        return vectors
    return encode
