"""The greedy picker (numpy argmax) against llama.cpp's own logit-bias + greedy chain, on the real model's logits.

The scheduler skips ``llama_sampler_sample`` for greedy requests without penalties (it costs ~0.5 ms a token on
Gemma's 262k vocabulary); these tests pin that the shortcut picks exactly what the C chain picks and leaves
the logits buffer (which logprobs read afterwards) untouched.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

llama_cpp = pytest.importorskip("llama_cpp")
np = pytest.importorskip("numpy")

from localai.types import GenerateRequest  # noqa: E402
from localai_llama_cpp.sampling import build_sampler, free_sampler, greedy  # noqa: E402


@pytest.fixture(scope="module")
def llm(gguf: Path) -> Iterator[Any]:
    model = llama_cpp.Llama(str(gguf), n_ctx=256, n_threads=2, verbose=False)
    yield model
    model.close()


def request(**sampling: Any) -> GenerateRequest:
    return GenerateRequest.model_validate({"model": "m", "prompt": "x", "sampling": sampling})


def logits_view(llm: Any) -> Any:
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(llm.n_vocab(),))


def c_pick(llm: Any, req: GenerateRequest) -> int:
    chain = build_sampler(llm.n_vocab(), req)
    try:
        return int(llama_cpp.llama_sampler_sample(chain, llm._ctx.ctx, -1))
    finally:
        free_sampler(chain)


def test_greedy_picker_matches_the_c_chain_and_leaves_the_logits_alone(llm: Any) -> None:
    llm.reset()
    llm.eval(llm.tokenize(b"The capital of France is", add_bos=True))
    checked = 0
    for _step in range(6):
        logits = logits_view(llm)
        before = logits.copy()
        top = int(before.argmax())
        second = int(np.argsort(-before)[1])
        low = int(before.argmin())
        biases = [{}, {str(top): -100.0}, {str(low): 1e6}, {str(top): -5.0, str(second): 3.0}, {"1": -100, "106": -100}]
        for bias in biases:
            req = request(temperature=0, logit_bias=bias)
            picker = greedy(req, llm.n_vocab())
            assert picker is not None
            got = picker.pick(logits)
            assert got == c_pick(llm, req), f"bias {bias}: numpy picked {got}, llama.cpp's chain another token"
            assert np.array_equal(logits, before), "the picker must restore the biased logits"
            checked += 1
        assert greedy(request(temperature=0, logit_bias={str(top): -100.0}), llm.n_vocab()).pick(logits) == second
        llm.eval([top])
    assert checked == 30


def test_greedy_picker_is_used_only_where_it_is_exact(llm: Any) -> None:
    n = llm.n_vocab()
    assert greedy(request(temperature=0), n) is not None
    assert greedy(request(temperature=0, repeat_penalty=1.0, presence_penalty=0.0), n) is not None
    assert greedy(request(temperature=0.7), n) is None  # sampled: the C chain (top-k/p, min-p, dist)
    assert greedy(request(), n) is None  # no temperature: llama.cpp's default 0.8
    for penalty in ({"repeat_penalty": 1.1}, {"presence_penalty": 0.5}, {"frequency_penalty": 0.5}):
        assert greedy(request(temperature=0, **penalty), n) is None  # stateful: needs the chain's accept()
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        greedy(request(temperature=0, logit_bias={str(n + 5): 1.0}), n)
