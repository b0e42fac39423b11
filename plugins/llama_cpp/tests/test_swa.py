"""``swa_full: false``: a window-sized cache for Gemma 3's sliding-window layers, and the check that keeps prefix
reuse honest with it (a prefix whose window cells were dropped is evaluated again, never reused half-empty)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from localai.testing import GGUF_NAME, ServerProcess, write_models

WINDOW = 512  # Gemma 3 270M's sliding window (gemma3.attention.sliding_window)
HEAD = " ".join(f"alpha{i}" for i in range(120))  # a shared start, well inside one window
LONG_TAIL = " ".join(f"beta{i}" for i in range(400))  # pushes the cached sequence far past the window
SHORT_TAIL = " ".join(f"gamma{i}" for i in range(20))


def yaml(name: str, extra: str = "") -> str:
    return (f"name: {name}\nbackend: llama-cpp\ncontext_size: 2048\nthreads: 2\n"
            f"options: ['swa_full:false'{extra}]\nparameters:\n  model: {GGUF_NAME}\n  temperature: 0\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = write_models(tmp_path_factory.mktemp("swa-models"), {"a.yaml": yaml("swa"), "b.yaml": yaml("swa-cold"),
                                                                  "c.yaml": yaml("swa-shift", ", 'context_shift'")})
    with ServerProcess(folder) as srv:
        yield srv


def complete(srv: ServerProcess, model: str, prompt: str) -> dict:
    r = httpx.post(srv.url + "/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": 8, "temperature": 0,
                                                      "logit_bias": {"1": -100, "106": -100}}, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def cached(body: dict) -> int:
    return int(((body.get("usage") or {}).get("prompt_tokens_details") or {}).get("cached_tokens") or 0)


def test_a_prefix_whose_window_was_dropped_is_evaluated_again_with_the_cold_answer(server: ServerProcess) -> None:
    first = complete(server, "swa", HEAD + " " + LONG_TAIL)
    assert first["usage"]["prompt_tokens"] > WINDOW + 300  # the slot now holds far more than one window
    again = complete(server, "swa", HEAD + " " + SHORT_TAIL)
    cold = complete(server, "swa-cold", HEAD + " " + SHORT_TAIL)
    assert cached(again) == 0  # the shared start's window cells are gone: nothing reused
    assert again["choices"][0]["text"] == cold["choices"][0]["text"]


def test_a_prefix_inside_the_window_is_still_reused(server: ServerProcess) -> None:
    complete(server, "swa-cold", HEAD + " " + SHORT_TAIL)  # the slot holds a short sequence: nothing dropped
    again = complete(server, "swa-cold", HEAD + " " + SHORT_TAIL + " delta")
    assert cached(again) > 100


def test_shifting_options_need_the_full_cache(server: ServerProcess) -> None:
    r = httpx.post(server.url + "/v1/completions", json={"model": "swa-shift", "prompt": "Hi", "max_tokens": 2}, timeout=120)
    assert r.status_code >= 400 and "needs swa_full on" in r.text
