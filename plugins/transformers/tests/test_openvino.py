"""OpenVINO as a user reaches it: ``localai backends install openvino-transformers`` (the README's instruction), then
YAMLs saying ``backend: transformers`` with ``type: OVModel...``. The flavour answers to its meta backend's name, so
those models run in its environment, on the real Gemma 3 270M and MiniLM.

The environment is the one ``scripts/test.sh`` installs and caches under ``LOCALAI_BACKENDS_PATH``; the server gets a
backends folder holding it alone (a link), as on a machine where it is the only transformers flavour installed.
MiniLM is exported to IR at load (the ``export`` path, seconds); Gemma's IR is exported once and cached (minutes)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from localai.install.backends import installed
from localai.testing import ServerProcess, gemma_ov_folder, missing
from localai.testing.fixtures import linked_models_folder

pytestmark = pytest.mark.engine
FLAVOUR = "openvino-transformers"
SENTENCES = ["A man is eating food.", "A cat sleeps on the sofa."]
# OpenVINO runs in the CPU's fastest precision (bf16 where the CPU has it): measured max deviation 9.6e-4.
OV_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def ov_backends(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backends folder with only ``openvino-transformers`` in it."""
    path = os.environ.get("LOCALAI_BACKENDS_PATH")
    meta = next((m for m in installed(Path(path)) if m["name"] == FLAVOUR), None) if path else None
    if meta is None or meta.get("unavailable"):
        missing(f"no {FLAVOUR} environment under LOCALAI_BACKENDS_PATH ({path or 'unset'}): "
                f"run `localai backends install {FLAVOUR} --backends-path ...` (scripts/test.sh does)")
    ok = subprocess.run([meta["interpreter"], "-c", "import optimum.intel.openvino, localai_transformers"],
                        capture_output=True, text=True)
    if ok.returncode != 0:
        missing(f"{meta['interpreter']} has no OpenVINO stack: {(ok.stderr.strip().splitlines() or ['?'])[-1]}")
    root = tmp_path_factory.mktemp("ov-backends")
    (root / FLAVOUR).symlink_to(meta["path"])
    return root


@pytest.fixture(scope="module")
def ov_server(tmp_path_factory: pytest.TempPathFactory, ov_backends: Path, gemma_hf: Path, minilm: Path) -> Iterator[ServerProcess]:
    gemma_ov = gemma_ov_folder(str(ov_backends / FLAVOUR / "venv" / "bin" / "python"), gemma_hf)
    folder = linked_models_folder(tmp_path_factory, "openvino-models", {"gemma-ov": gemma_ov, "minilm": minilm}, {
        "gemma-ov.yaml": "name: gemma-ov\nbackend: transformers\ntype: OVModelForCausalLM\n"
                         "context_size: 512\nparameters:\n  model: gemma-ov\n  temperature: 0\n",
        "minilm-ov.yaml": "name: minilm-ov\nbackend: transformers\ntype: OVModelForFeatureExtraction\n"
                          "embeddings: true\nparameters:\n  model: minilm\n",
    })
    env = {"LOCALAI_BACKENDS_PATH": str(ov_backends), "LOCALAI_PYTHON_TRANSFORMERS": "", "HF_HUB_OFFLINE": "1"}
    with ServerProcess(folder, env=env, args=["--backends-path", str(ov_backends)]) as srv:
        yield srv


def client(srv: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=900, _strict_response_validation=True)


def test_the_flavour_is_listed_answering_to_transformers(ov_backends: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "localai.cli", "backends", "--backends-path", str(ov_backends)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "LOCALAI_BACKENDS_PATH": ""}).stdout
    row = next(line for line in out.splitlines() if line.startswith(FLAVOUR + " "))
    assert "transformers," in row.split(FLAVOUR, 1)[1] and "available" in row, out
    assert not any(line.startswith("transformers ") for line in out.splitlines())  # one backend, not two


def test_openvino_feature_extraction_matches_sentence_transformers(ov_server: ServerProcess, st_encode) -> None:
    r = client(ov_server).embeddings.create(model="minilm-ov", input=SENTENCES, encoding_format="float")
    reference = st_encode(SENTENCES)
    for d, ref in zip(r.data, reference):
        assert len(d.embedding) == 384
        assert math.isclose(math.fsum(x * x for x in d.embedding), 1.0, abs_tol=1e-4)
        assert max(abs(a - b) for a, b in zip(d.embedding, ref)) < OV_TOLERANCE
    # Loaded by the flavour's environment, reached through the name `transformers`.
    assert f"model 'minilm-ov' loaded by {FLAVOUR} (" in ov_server.log(None)


def test_openvino_causal_lm_streams_its_greedy_text(ov_server: ServerProcess) -> None:
    c = client(ov_server)
    a = c.completions.create(model="gemma-ov", prompt="The three primary colors are", max_tokens=6)
    b = c.completions.create(model="gemma-ov", prompt="The three primary colors are", max_tokens=6)
    assert a.choices[0].text.strip() and a.choices[0].text == b.choices[0].text
    assert a.choices[0].finish_reason == "length" and a.usage is not None and a.usage.completion_tokens == 6
    # A plain client for the stream: the SDK's strict Completion type refuses the chunks' null finish_reason.
    plain = openai.OpenAI(base_url=ov_server.url + "/v1", api_key="x", max_retries=0, timeout=900)
    pieces = [ch.choices[0].text for ch in plain.completions.create(model="gemma-ov", prompt="The three primary colors are",
                                                                 max_tokens=6, stream=True) if ch.choices]
    assert len([p for p in pieces if p]) >= 3 and "".join(pieces) == a.choices[0].text
