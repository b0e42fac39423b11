"""Fixtures for the llama-cpp plugin's tests: the real Gemma 3 270M GGUF, in-process and behind a server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from localai.testing import GGUF_NAME, ServerProcess, default_gguf, write_models


@pytest.fixture(scope="session")
def gguf() -> Path:
    return default_gguf()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the GGUF as ``gemma`` (alias ``llama``), ``gemma-embed`` and a bare-file model."""
    folder = write_models(tmp_path_factory.mktemp("llama-models"), {
        # repack off: greedy text must not depend on what the prompt cache holds (repacked kernels round batch rows
        # differently; on AVX-512 that flips near-ties between a cold and a warm run of the same prompt).
        "gemma.yaml": f"name: gemma\nbackend: llama\ncontext_size: 1024\noptions: ['repack:false']\n"
                      f"parameters:\n  model: {GGUF_NAME}\n  temperature: 0\n",
        "embed.yaml": f"name: gemma-embed\nbackend: LLAMA_CPP\nembeddings: true\ncontext_size: 256\nparameters:\n  model: {GGUF_NAME}\n",
    })
    with ServerProcess(folder) as srv:
        yield srv
