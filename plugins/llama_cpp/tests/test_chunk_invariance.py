"""A greedy request gets the same answer when its prompt is finished from a cached start (a warm prompt cache).

The server's defaults, one slot: the second of two identical requests reuses the first one's cached prompt. Before
``batch_invariant`` (on by default) the vendored llama.cpp rounded the rest of a cached prompt otherwise than the
same prompt decoded cold ("Tell a story." then answered other text); this was pinned as a strict xfail until then.
``test_same_answer.py`` checks the same with four slots, long prompts, siblings and concurrent requests.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from localai.testing import GGUF_NAME, ServerProcess, write_models

PROMPTS = ["Tell a story.", "Say a city.", "Name three primary colors."]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yaml = f"name: gemma\nbackend: llama-cpp\ncontext_size: 4096\nparameters:\n  model: {GGUF_NAME}\n"
    with ServerProcess(write_models(tmp_path_factory.mktemp("invariance"), {"gemma.yaml": yaml})) as srv:
        yield srv


def greedy(srv: ServerProcess, content: str) -> tuple[str, list[float]]:
    body = {"model": "gemma", "temperature": 0, "max_tokens": 8, "logprobs": True, "top_logprobs": 1,
            "messages": [{"role": "user", "content": content}]}
    r = httpx.post(srv.url + "/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    return choice["message"]["content"], [t["logprob"] for t in choice["logprobs"]["content"]]


def test_a_repeated_greedy_request_gets_the_same_answer_and_logprobs(server: ServerProcess) -> None:
    differ = {}
    for prompt in PROMPTS:
        cold, warm = greedy(server, prompt), greedy(server, prompt)  # the second finishes from the first's cache
        if cold != warm:
            differ[prompt] = (cold[0], warm[0], max(abs(a - b) for a, b in zip(cold[1], warm[1])))
    assert not differ, differ
