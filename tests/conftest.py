"""Shared fixtures: one real server on the default model for all API tests in the session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from localai.testing import GGUF_NAME, ServerProcess, write_models

# The models every API test can use. ``gemma`` is the chat/completion model; ``gemma-embed``
# loads the same GGUF for embeddings. Greedy by default so tests are deterministic.
MODELS = {
    "gemma.yaml": f"""
name: gemma
backend: llama
context_size: 2048
parameters:
  model: {GGUF_NAME}
  temperature: 0
""",
    "gemma-embed.yaml": f"""
name: gemma-embed
backend: llama-cpp
embeddings: true
context_size: 512
parameters:
  model: {GGUF_NAME}
""",
}


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_models(tmp_path_factory.mktemp("models"), MODELS)


@pytest.fixture(scope="session")
def server(models_dir: Path) -> Iterator[ServerProcess]:
    """A ``localai run`` on the default model, shared by the session (workers stay warm)."""
    with ServerProcess(models_dir) as srv:
        yield srv


@pytest.fixture(scope="session")
def base_url(server: ServerProcess) -> str:
    return server.url

# Test-only plugin modules (fake_backend) import from here, in this process and in server workers.
TESTS_DIR = Path(__file__).parent
sys.path.insert(0, str(TESTS_DIR))
