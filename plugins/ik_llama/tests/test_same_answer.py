"""ik-llama-cpp gives a greedy request the same answer, token for token and in logprobs, whatever its prompt cache held.

ik_llama.cpp's CPU kernels round a row by how many rows share its batch below 64 rows (a prompt's last token
decoded alone after a cached prefix got logits 0.5 away from the same token decoded cold). With the default
``batch_invariant``, a cached prefix is reused only when at least 64 prompt tokens are left to evaluate and only as
far as it was itself evaluated as a prompt, so every row rounds as it would cold. The shared same-answer suite
(``localai.testing.same_answer_suite``) runs on the default settings; one sequence at a time, so its eight
concurrent requests are served in turn, each meeting another one's cache.
"""

from __future__ import annotations

import pytest
from localai.testing import GGUF_NAME, ServerProcess
from localai.testing.same_answer import ask, user
from localai.testing.same_answer_suite import SameAnswerSuite
from localai_ik_llama.model import chunks
from localai_ik_llama.options import MIN_BATCH, MIN_ROWS, check_batches


class TestSameAnswer(SameAnswerSuite):
    models = {"gemma.yaml": f"name: gemma\nbackend: ik-llama-cpp\ncontext_size: 8192\nparameters:\n  model: {GGUF_NAME}\n"}

    def test_the_load_time_check_passed(self, first: ServerProcess) -> None:
        """The worker checked at load that a prompt evaluated whole and in halves gives the same logits, and kept
        prompt reuse on."""
        ask(first, user("Say a city."))
        assert "batch-invariant prompt reuse checked" in first.log(None)
        assert "does NOT hold" not in first.log(None)

    def test_long_prompts_are_still_reused(self, first: ServerProcess) -> None:
        """All but the last MIN_ROWS tokens of a long prompt asked again come from the cache; a short one is
        evaluated whole."""
        cached: list[tuple[int, int]] = []
        for text in ("The lighthouse keeper lit the lamp. " * 30 + "Why?", "Say a city."):
            ask(first, user(text))
            ask(first, user(text), cached=cached)
        (long_hit, long_total), (short_hit, _) = cached
        assert long_total >= 2 * MIN_ROWS and long_hit == long_total - MIN_ROWS and short_hit == 0, cached


@pytest.mark.parametrize(("start", "end", "size"), [(0, 20, 512), (0, 512, 512), (0, 513, 512), (100, 164, 128),
                                                    (0, 1100, 512), (7, 7 + MIN_ROWS + 1, MIN_BATCH), (0, 2000, 128)])
def test_prompt_batches_are_even_and_never_below_the_row_floor(start: int, end: int, size: int) -> None:
    got = chunks(start, end, size)
    assert got[0][0] == start and got[-1][1] == end and all(a == b for (_, a), (b, _) in zip(got, got[1:]))
    assert all(b - a <= size for a, b in got)
    assert end - start < MIN_ROWS or all(b - a >= MIN_ROWS for a, b in got)


def test_a_batch_below_the_floor_is_refused_unless_reuse_or_invariance_is_off() -> None:
    with pytest.raises(ValueError, match="n_batch:64 is below 128"):
        check_batches({"n_batch": 64, "batch_invariant": True, "prompt_cache": True})
    with pytest.raises(ValueError, match="n_ubatch:100"):
        check_batches({"n_ubatch": 100})
    check_batches({"n_batch": 64, "batch_invariant": False})
    check_batches({"n_batch": 64, "prompt_cache": False})
