"""Fixtures for the diffusers backend's tests: the engine's interpreter, a tiny real pipeline, a server on it.

The engine (torch + diffusers) lives in its own environment, so these tests drive it through a real server
whose diffusers workers run on that interpreter. It is found, in order, from ``LOCALAI_PYTHON_DIFFUSERS``,
or an installed backend environment (``localai backends install diffusers``). Without one the tests fail when
``LOCALAI_TEST_STRICT`` is set (scripts/test.sh sets it) and skip otherwise.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from localai.testing import ServerProcess, backend_python, missing

REPO = Path(__file__).resolve().parents[3]
KEY = "diffusers-test-key"


def _candidates() -> list[tuple[str, str]]:
    out = []
    python, origin = backend_python("diffusers")
    if python:
        out.append((python, origin))
    return out


@pytest.fixture(scope="session")
def engine_python() -> str:
    problems = []
    for python, origin in _candidates():
        probe = subprocess.run([python, "-c", "import torch, diffusers, transformers, localai_diffusers.model"],
                               capture_output=True, text=True, timeout=300)
        if probe.returncode == 0:
            return python
        problems.append(f"{python} ({origin}): {probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else 'import failed'}")
    reason = ("no diffusers engine environment: set LOCALAI_PYTHON_DIFFUSERS to a Python with torch, diffusers, "
              "transformers and localai-diffusers, or run `localai backends install diffusers` / scripts/setup.sh"
              + (" (tried: " + "; ".join(problems) + ")" if problems else ""))
    missing(reason)


@pytest.fixture(scope="session")
def models_folder(engine_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with the tiny pipeline saved by ``save_pretrained`` and YAMLs serving it."""
    folder = tmp_path_factory.mktemp("diffusers") / "models"
    folder.mkdir()
    subprocess.run([engine_python, "-m", "localai_diffusers.tiny", str(folder / "tiny-sd")], check=True,
                   capture_output=True, timeout=600)
    (folder / "a-tiny.yaml").write_text(  # the first image model: what a request without ``model`` gets
        "name: tiny-sd\nbackend: diffusers\nstep: 2\nparameters:\n  model: tiny-sd\n"
        "diffusers:\n  pipeline_type: StableDiffusionPipeline\n  cfg_scale: 7\n")
    (folder / "tiny-img2img.yaml").write_text(
        "name: tiny-sd-img2img\nbackend: diffusers\nstep: 2\nparameters:\n  model: tiny-sd\n"
        "diffusers:\n  scheduler_type: euler_a\n  img2img: true\n")
    (folder / "z-hub.yaml").write_text("name: hub-sd\nbackend: diffusers\nparameters:\n  model: someorg/not-downloaded-sd\n")
    (folder / "bad.yaml").write_text("name: bad-sd\nbackend: diffusers\nparameters:\n  model: tiny-sd\n"
                                     "diffusers:\n  pipeline_type: StableDiffusionPipelin\n")
    return folder


@pytest.fixture(scope="session")
def server(engine_python: str, models_folder: Path) -> Iterator[ServerProcess]:
    env = {"LOCALAI_PYTHON_DIFFUSERS": engine_python, "HF_HUB_OFFLINE": "1", "LOCALAI_LOG_LEVEL": "INFO"}
    with ServerProcess(models_folder, env=env, args=["--api-key", KEY]) as srv:
        yield srv
