"""OpenVINO types on the real models, through a server whose transformers workers run in an OpenVINO-flavoured
environment (``LOCALAI_TEST_OPENVINO_PYTHON``: torch 2.13.0 + ``localai-transformers[openvino]`` with
transformers 5.0.*, see the README). Optional flavour: skipped when that environment is not given."""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from localai.testing import ServerProcess

ENV = "LOCALAI_PYTHON_TRANSFORMERS"


def link(folder: Path, name: str, target: Path) -> None:
    (folder / name).symlink_to(target)

pytestmark = pytest.mark.engine

SENTENCES = ["A man is eating food.", "A cat sleeps on the sofa."]
# OpenVINO runs in the CPU's fastest precision (bf16 where the CPU has it): measured max deviation 9.6e-4.
OV_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def ov_server(tmp_path_factory: pytest.TempPathFactory, gemma_hf: Path, minilm: Path) -> Iterator[ServerProcess]:
    python = os.environ.get("LOCALAI_TEST_OPENVINO_PYTHON")
    if not python:
        pytest.skip("LOCALAI_TEST_OPENVINO_PYTHON is not set (the optional OpenVINO environment)")
    ok = subprocess.run([python, "-c", "import optimum.intel.openvino, localai_transformers"], capture_output=True, text=True)
    if ok.returncode != 0:
        pytest.skip(f"{python} has no OpenVINO stack: {ok.stderr.strip().splitlines()[-1]}")
    folder = tmp_path_factory.mktemp("openvino-models")
    link(folder, "gemma-hf", gemma_hf)
    link(folder, "minilm", minilm)
    (folder / "gemma-ov.yaml").write_text("name: gemma-ov\nbackend: transformers\ntype: OVModelForCausalLM\n"
                                          "context_size: 512\nparameters:\n  model: gemma-hf\n  temperature: 0\n")
    (folder / "minilm-ov.yaml").write_text("name: minilm-ov\nbackend: transformers\ntype: OVModelForFeatureExtraction\n"
                                           "embeddings: true\nparameters:\n  model: minilm\n")
    with ServerProcess(folder, env={ENV: python, "HF_HUB_OFFLINE": "1"}) as srv:
        yield srv


def client(srv: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=900, _strict_response_validation=True)


def test_openvino_feature_extraction_matches_sentence_transformers(ov_server: ServerProcess, st_encode) -> None:
    r = client(ov_server).embeddings.create(model="minilm-ov", input=SENTENCES, encoding_format="float")
    reference = st_encode(SENTENCES)
    for d, ref in zip(r.data, reference):
        assert len(d.embedding) == 384
        assert math.isclose(math.fsum(x * x for x in d.embedding), 1.0, abs_tol=1e-4)
        assert max(abs(a - b) for a, b in zip(d.embedding, ref)) < OV_TOLERANCE


def test_openvino_causal_lm_streams_greedy_text(ov_server: ServerProcess) -> None:
    c = client(ov_server)
    a = c.completions.create(model="gemma-ov", prompt="The three primary colors are", max_tokens=6)
    b = c.completions.create(model="gemma-ov", prompt="The three primary colors are", max_tokens=6)
    assert a.choices[0].text.strip() and a.choices[0].text == b.choices[0].text
    assert a.choices[0].finish_reason == "length" and a.usage.completion_tokens == 6
