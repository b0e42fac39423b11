"""Base or instruction-tuned: decided from the YAML and the GGUF header, shown in /v1/models and the start-up log."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from localai.config import ModelConfig
from localai.gguf import gguf_metadata
from localai.registry.model_kind import model_kind
from localai.testing import ServerProcess, default_gguf
from serving import FAKE_ENV, models


def write_gguf(path: Path, meta: dict[str, str]) -> Path:
    """A header-only GGUF (version 3, no tensors) with string metadata: what the kind is read from."""
    def string(s: str) -> bytes:
        raw = s.encode()
        return struct.pack("<Q", len(raw)) + raw

    body = b"".join(string(k) + struct.pack("<I", 8) + string(v) for k, v in meta.items())
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(meta)) + body)
    return path


def config(**fields: object) -> ModelConfig:
    return ModelConfig.model_validate({"name": "m", "parameters": {"model": "m.gguf"}, **fields})


@pytest.mark.parametrize(("meta", "kind", "because"), [
    ({"general.name": "Gemma 3 270m", "general.finetune": "it"}, "instruct", "names instruction tuning"),
    ({"general.name": "Meta Llama 3.1 8B Instruct"}, "instruct", "names instruction tuning"),
    ({"general.name": "Qwen2.5 7B", "tokenizer.chat_template": "{{ messages }}"}, "instruct", "carries a chat template"),
    ({"general.name": "Mistral 7B v0.1", "general.finetune": "base"}, "base", "names a base model"),
    ({"general.name": "Phi 2"}, "base", "no chat template"),
])
def test_the_gguf_header_says_which_kind(tmp_path: Path, meta: dict[str, str], kind: str, because: str) -> None:
    got = model_kind(config(), write_gguf(tmp_path / "m.gguf", meta))
    assert got is not None and got.kind == kind and because in got.because


def test_the_default_model_is_a_base_model_by_its_own_header() -> None:
    """The PyPI Gemma 3 270M: no chat template, no instruct tuning in its name: the newcomer's 'broken' server."""
    got = model_kind(config(), default_gguf())
    assert got is not None and got.base and "no chat template" in got.because and "Gemma 3 270m" in got.because


def test_the_yaml_overrides_the_header(tmp_path: Path) -> None:
    gguf = write_gguf(tmp_path / "m.gguf", {"general.name": "Phi 2"})
    said = model_kind(config(base_model=False), gguf)
    assert said is not None and said.kind == "instruct" and "base_model: false" in said.because
    listed = model_kind(config(known_usecases=["FLAG_COMPLETION"]), write_gguf(tmp_path / "i.gguf", {"general.finetune": "it"}))
    assert listed is not None and listed.base and "known_usecases" in listed.because


def test_no_kind_for_embeddings_or_unreadable_files(tmp_path: Path) -> None:
    assert model_kind(config(embeddings=True), default_gguf()) is None
    (tmp_path / "bad.gguf").write_bytes(b"not a gguf")
    assert model_kind(config(), tmp_path / "bad.gguf") is None


@pytest.mark.parametrize("raw", [
    b"GGUF but not really a model file",  # version and counts read from text: billions
    b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 40) + b"key",  # a key longer than the file
    b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 6, 1 << 61),
    b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 9, 3),
    b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 62),  # more pairs promised than the file holds
])
def test_a_damaged_gguf_is_unreadable_not_a_crash(tmp_path: Path, raw: bytes) -> None:
    """A file someone dropped in the models folder decides nothing and allocates nothing (it once took the server down
    at start-up with a MemoryError: the header read trusted a length of several exabytes)."""
    path = tmp_path / "broken.gguf"
    path.write_bytes(raw)
    with pytest.raises(ValueError):
        gguf_metadata(str(path))
    assert model_kind(config(), path) is None


def test_a_fifo_named_gguf_decides_nothing_and_does_not_block(tmp_path: Path) -> None:
    """Start-up reads every GGUF's header; opening a FIFO for reading would wait for a writer forever."""
    os.mkfifo(tmp_path / "pipe.gguf")
    (tmp_path / "folder.gguf").mkdir()
    assert model_kind(config(), tmp_path / "pipe.gguf") is None
    assert model_kind(config(), tmp_path / "folder.gguf") is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tail=st.binary(max_size=200))
def test_any_bytes_after_the_magic_read_or_refuse(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "fuzz.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<I", 3) + tail)
    try:
        meta = gguf_metadata(str(path))
    except ValueError:
        return
    assert isinstance(meta, dict)


def test_models_list_and_start_up_log_say_base(tmp_path: Path) -> None:
    folder = models(tmp_path, {"base.yaml": "name: base\nbackend: fake\nparameters:\n  model: base.gguf\n",
                               "chat.yaml": "name: chat\nbackend: fake\nparameters:\n  model: chat.gguf\n"})
    write_gguf(folder / "base.gguf", {"general.name": "Phi 2"})
    write_gguf(folder / "chat.gguf", {"general.name": "Phi 3 Mini Instruct"})
    with ServerProcess(folder, env=FAKE_ENV) as srv:
        listed = {m["id"]: m for m in httpx.get(srv.url + "/v1/models").json()["data"]}
        webui = {m["id"]: m for m in httpx.get(srv.url + "/webui/api/models").json()["data"]}
        log = srv.log()
    assert listed["base"]["model_type"] == "base" and "no chat template" in listed["base"]["model_type_reason"]
    assert listed["chat"]["model_type"] == "instruct"
    assert webui["base"]["model_type"] == "base" and webui["chat"]["model_type"] == "instruct"
    assert "model base is a base (pretrained) model" in log and "localai models install" in log
    assert "model chat is a base" not in log
