"""LocalAI's ``prompt_cache_path`` / ``prompt_cache_all`` / ``prompt_cache_ro`` on the real model, through the server:
what the file holds, that a restarted server starts the prompt from it with the same answer, and what ``ro`` and
``all`` change. (The restart itself, for every backend declaring ``prompt_cache``, is a conformance check too.)"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from localai.testing import GGUF_NAME, ServerProcess, write_models

PROMPT = "A long shared system prompt: " + " ".join(f"rule{i}" for i in range(90)) + ". Now answer:"
OTHER = "Something else entirely, " + " ".join(f"item{i}" for i in range(40))
MAGIC = 0x67677371  # 'ggsq': llama.cpp's sequence state file


def yaml(name: str, extra: str) -> str:
    return (f"name: {name}\nbackend: llama-cpp\ncontext_size: 1024\nthreads: 2\noptions: ['repack:false']\n{extra}"
            f"parameters:\n  model: {GGUF_NAME}\n  temperature: 0\n")


def file_tokens(path: Path) -> list[int]:
    """The tokens a state file holds (its header: magic, version, count, then the tokens)."""
    data = path.read_bytes()
    magic, _version, n = struct.unpack_from("<III", data)
    assert magic == MAGIC
    return list(struct.unpack_from(f"<{n}i", data, 12))


def complete(srv: ServerProcess, model: str, prompt: str) -> dict:
    r = httpx.post(srv.url + "/v1/completions", timeout=300,
                   json={"model": model, "prompt": prompt, "max_tokens": 8, "temperature": 0, "logit_bias": {"1": -100, "106": -100}})
    assert r.status_code == 200, r.text
    return r.json()


def tokens(srv: ServerProcess, model: str, text: str) -> list[int]:
    r = httpx.post(srv.url + "/v1/tokenize", json={"model": model, "content": text, "add_special": True}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


def cached(body: dict) -> int:
    return int(body["usage"]["prompt_tokens_details"]["cached_tokens"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = write_models(tmp_path_factory.mktemp("prompt-file"), {
        "pc.yaml": yaml("pc", "prompt_cache_path: cache/pc.bin\n"),
        "all.yaml": yaml("pc-all", "prompt_cache_path: cache/all.bin\nprompt_cache_all: true\n"),
        "ro.yaml": yaml("pc-ro", "prompt_cache_path: cache/pc.bin\nprompt_cache_ro: true\n"),
        "two.yaml": yaml("pc-two-slots", "prompt_cache_path: cache/pc.bin\nprompt_cache_ro: true\n").replace(
            "'repack:false'", "'repack:false', 'parallel:2'"),
        "bad.yaml": yaml("pc-bad", "prompt_cache_path: cache/bad.bin\n"),
        "plain.yaml": yaml("plain", ""),
    })
    (folder / "cache").mkdir()
    (folder / "cache" / "bad.bin").write_bytes(struct.pack("<III", MAGIC, 99, 1) + struct.pack("<i", 2) + b"\0" * 64)
    return folder


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[ServerProcess]:
    """Started after the restart test, which brings up its own two servers on the same folder."""
    with ServerProcess(folder) as srv:
        yield srv


def test_the_prompt_state_survives_a_restart_with_the_same_answer(folder: Path) -> None:
    with ServerProcess(folder) as srv:
        cold = complete(srv, "pc", PROMPT)
        want = tokens(srv, "pc", PROMPT)
        reference = complete(srv, "plain", PROMPT)
    assert cached(cold) == 0
    assert file_tokens(folder / "cache" / "pc.bin") == want  # the prompt, written once it was evaluated
    with ServerProcess(folder) as srv:
        warm = complete(srv, "pc", PROMPT)
    assert cached(warm) == cold["usage"]["prompt_tokens"] - 2  # all but the two tokens decoded for the logits
    assert warm["choices"][0]["text"] == cold["choices"][0]["text"] == reference["choices"][0]["text"]


def test_read_only_uses_the_file_and_never_writes_it(folder: Path, server: ServerProcess) -> None:
    path = folder / "cache" / "pc.bin"
    complete(server, "pc", PROMPT)  # the file holds PROMPT
    before = path.read_bytes()
    hit = complete(server, "pc-ro", PROMPT + " More.")
    complete(server, "pc-ro", OTHER)
    complete(server, "pc-ro", PROMPT + " Other.")
    assert cached(hit) >= len(file_tokens(path)) - 2
    assert path.read_bytes() == before


def test_prompt_cache_all_keeps_the_generated_tokens_too(folder: Path, server: ServerProcess) -> None:
    body = complete(server, "pc-all", PROMPT)
    prompt = tokens(server, "pc-all", PROMPT)
    follow = complete(server, "pc-all", PROMPT + body["choices"][0]["text"])
    saved = file_tokens(folder / "cache" / "all.bin")
    # The first answer's file held the prompt and the 7 generated tokens decoded (the 8th was sampled, never
    # decoded); the follow-up reused them and wrote its own prompt and answer.
    assert cached(follow) >= len(prompt) + 5
    assert saved[: len(prompt)] == prompt and len(saved) == follow["usage"]["prompt_tokens"] + 7


def test_a_file_that_does_not_fit_is_reported_answered_cold_and_replaced(folder: Path, server: ServerProcess) -> None:
    """Another version's file, and a file of one slot loaded by a model with two (llama.cpp refuses its layout)."""
    reference = complete(server, "plain", PROMPT)
    bad = complete(server, "pc-bad", PROMPT)
    two = complete(server, "pc-two-slots", PROMPT)
    log = server.log(None)
    for body in (bad, two):
        assert cached(body) == 0 and body["choices"][0]["text"] == reference["choices"][0]["text"]
    assert "bad.bin is not a llama.cpp sequence state file" in log and "pc.bin could not be loaded" in log
    assert file_tokens(folder / "cache" / "bad.bin") == tokens(server, "pc-bad", PROMPT)
