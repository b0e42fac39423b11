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

import llama_cpp
import numpy as np
import pytest
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


@pytest.mark.parametrize(("bias", "expected"), [
    ({5: float("-inf"), 3: -1.0}, 7),  # the top banned, the first of two equal runners-up lowered: the other wins
    ({5: float("-inf"), 7: -1.0}, 3),
    ({5: float("-inf"), 3: -1e-7}, 3),  # too small to change a float32 of 10: still a tie, the first index wins
    ({5: float("-inf")}, 3),
    ({2: -1.0}, 5),  # the plain argmax is not biased: the shortcut
    ({0: 2.0}, 5),  # raising: never the shortcut
    ({9: 1e9, 3: -1.0}, 9),
])
def test_greedy_picker_shortcut_keeps_the_first_of_equal_maxima(bias: dict[int, float], expected: int) -> None:
    """A bias that only lowers skips the in-place add when the plain argmax is not biased; ties must still
    resolve to the lowest index of the biased vector, as llama.cpp's greedy sampler does."""
    logits = np.zeros(10, dtype=np.float32)
    logits[3] = logits[7] = 10.0
    logits[5] = 20.0
    biased = logits.copy()
    for token, value in bias.items():
        biased[token] = np.float32(biased[token] + np.float32(value))
    picker = greedy(request(temperature=0, logit_bias={str(t): v for t, v in bias.items()}), len(logits))
    before = logits.copy()
    assert int(biased.argmax()) == expected  # the reference: llama.cpp adds the bias, then takes the first maximum
    assert picker.pick(logits) == expected
    assert np.array_equal(logits, before)
