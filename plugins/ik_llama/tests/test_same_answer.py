"""ik-llama-cpp gives a greedy request the same answer, token for token and in logprobs, whatever its prompt cache held.

ik_llama.cpp's CPU kernels round a row by its batch: matrix products by how many rows share it (below 64), flash
attention by the KV length past 768 cells (a 771-token prompt finished from its cached first 707 tokens got logits
0.85 away from the cold ones, on a Xeon with AVX512-VNNI). With the default ``batch_invariant``, prompts are
evaluated in chunks of CHUNK tokens at fixed positions and a cached prefix is reused only up to a chunk boundary, so
every prompt row comes from the batch it would have come from cold. The shared same-answer suite
(``localai.testing.same_answer_suite``) runs on the default settings; one sequence at a time, so its eight
concurrent requests are served in turn, each meeting another one's cache.
"""

from __future__ import annotations

import pytest
from localai.testing import GGUF_NAME, ServerProcess
from localai.testing.same_answer import ask, user
from localai.testing.same_answer_suite import SameAnswerSuite
from localai_ik_llama.model import chunks, fixed_chunks
from localai_ik_llama.options import CHUNK, MIN_BATCH, check_batches


class TestSameAnswer(SameAnswerSuite):
    models = {"gemma.yaml": f"name: gemma\nbackend: ik-llama-cpp\ncontext_size: 8192\nparameters:\n  model: {GGUF_NAME}\n"}

    def test_long_prompts_are_still_reused_to_a_chunk_boundary(self, first: ServerProcess) -> None:
        """A long prompt asked again takes every whole fixed chunk but the one holding its last token from the
        cache (past 768 cells, where flash attention's rounding changes with the KV length); a short one is
        evaluated whole."""
        cached: list[tuple[int, int]] = []
        for text in ("The lighthouse keeper lit the lamp. " * 120 + "Why?", "Say a city."):
            ask(first, user(text))
            ask(first, user(text), cached=cached)
        (long_hit, long_total), (short_hit, _) = cached
        assert long_total > 768 and long_hit == (long_total - 1) // CHUNK * CHUNK and short_hit == 0, cached


@pytest.mark.parametrize(("start", "end", "size"), [(0, 20, 512), (0, 512, 512), (0, 513, 512), (100, 164, 128),
                                                    (0, 1100, 512), (7, 7 + 2 * CHUNK + 1, MIN_BATCH), (0, 2000, 128)])
def test_prompt_batches_cover_the_range_evenly(start: int, end: int, size: int) -> None:
    """batch_invariant off: as few batches as fit, of even sizes."""
    got = chunks(start, end, size)
    assert got[0][0] == start and got[-1][1] == end and all(a == b for (_, a), (b, _) in zip(got, got[1:]))
    assert all(b - a <= size for a, b in got) and max(b - a for a, b in got) - min(b - a for a, b in got) <= 1


@pytest.mark.parametrize(("start", "end"), [(0, 20), (0, 128), (0, 129), (128, 771), (256, 300), (0, 1000)])
def test_fixed_chunks_cut_at_the_same_positions_whatever_the_start(start: int, end: int) -> None:
    """batch_invariant: a prompt finished from a cached prefix is cut where its cold evaluation was."""
    got = fixed_chunks(start, end, CHUNK)
    cold = fixed_chunks(0, end, CHUNK)
    assert got == [c for c in cold if c[0] >= start]
    assert all(b - a <= CHUNK and (a % CHUNK == 0) for a, b in cold)


def test_a_batch_below_the_floor_is_refused_unless_reuse_or_invariance_is_off() -> None:
    with pytest.raises(ValueError, match="n_batch:64 is below 128"):
        check_batches({"n_batch": 64, "batch_invariant": True, "prompt_cache": True})
    with pytest.raises(ValueError, match="n_ubatch:100"):
        check_batches({"n_ubatch": 100})
    check_batches({"n_batch": 64, "batch_invariant": False})
    check_batches({"n_batch": 64, "prompt_cache": False})
