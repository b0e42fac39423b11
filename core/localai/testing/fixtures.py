"""pytest fixtures the engine backends' test suites share, written once: import them into a ``conftest.py``::

    from localai.testing.fixtures import engine_python_fixture, gemma_hf, minilm, st_encode  # noqa: F401

    engine_python = engine_python_fixture("transformers", "torch, transformers, localai_transformers")

``engine_python`` is the backend environment's interpreter (the engine lives there, never in the test process);
``gemma_hf`` the real Gemma 3 270M as an HF folder written from the PyPI GGUF by that interpreter; ``minilm`` the
real all-MiniLM-L6-v2; ``st_encode`` sentence-transformers' own vectors for texts, the embeddings reference;
``linked_models_folder`` (a plain function) the models folder a server fixture serves, with those models linked in;
``openai_client_fixture`` a fixture factory, like ``engine_python_fixture``: ``client = openai_client_fixture()``
gives each test an OpenAI SDK client on the module's own ``server`` fixture.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from localai.testing.models import backend_python, engine_side, gemma_hf_folder, minilm_folder
from localai.testing.processes import ServerProcess
from localai.testing.strict import missing

if TYPE_CHECKING:
    import openai


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


def linked_models_folder(tmp_path_factory: pytest.TempPathFactory, name: str, links: dict[str, Path],
                         yamls: dict[str, str]) -> Path:
    """A new models folder for a server fixture: each of ``links`` (name in the folder: model on disk) linked in,
    not copied (the real models are large and cached), and the ``yamls`` (file name: text) written."""
    folder = tmp_path_factory.mktemp(name)
    for link, target in links.items():
        (folder / link).symlink_to(target)
    for file, text in yamls.items():
        (folder / file).write_text(text)
    return folder


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
    done: dict[tuple[str, ...], list[list[float]]] = {}  # each engine-side call starts torch: ask once per input

    def encode(texts: list[str]) -> list[list[float]]:
        key = tuple(texts)
        if key not in done:
            done[key] = json.loads(engine_side(engine_python, "st-encode", str(minilm), stdin=json.dumps(texts)))
        return [list(v) for v in done[key]]
    return encode


def openai_client_fixture(timeout: float = 120) -> Any:
    """A fixture (assign it to ``client`` in a test module): an OpenAI SDK client per test on that module's ``server``
    fixture, its own connection whatever an earlier error did to the previous one; strict validation, no retries."""

    @pytest.fixture
    def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
        import openai  # here, not at the top: an engine's environment imports these fixtures and may lack the SDK

        with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=timeout,
                           _strict_response_validation=True) as c:
            yield c

    return client
