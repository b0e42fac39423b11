"""diffusers against the backend contract (localai.testing.BackendConformance): the image capability.

The model is the tiny Stable Diffusion pipeline the plugin builds from configs (``localai_diffusers.tiny``), saved
as a diffusers folder by the backend's own environment and loaded through the real ``from_pretrained`` path.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
from localai.testing import BackendConformance, backend_python, missing


def tiny_pipeline() -> Path:
    python, reason = backend_python("diffusers")
    if python is None:
        missing(reason)
    folder = Path(tempfile.mkdtemp(prefix="conformance-diffusers-")) / "tiny-sd"
    out = subprocess.run([python, "-m", "localai_diffusers.tiny", str(folder)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"building the tiny pipeline failed:\n{out.stderr[-3000:]}"
    return folder


@pytest.mark.engine
class TestDiffusersConformance(BackendConformance):
    backend = "diffusers"
    aliases = ("diffusers-backend",)
    model = {"step": 2, "parameters": {"model": "tiny-sd"}, "diffusers": {"pipeline_type": "StableDiffusionPipeline"}}
    capabilities = ("image",)
    engine_modules = ("torch", "diffusers")
    env = {"HF_HUB_OFFLINE": "1"}
    timeout = 300

    @classmethod
    def model_files(cls) -> dict[str, Path]:
        return {"tiny-sd": tiny_pipeline()}
