"""The same greedy request gets the same answer, token for token and in logprobs, whatever the server did before.

Default settings (flash attention on, prompt cache and host-RAM cache on) with ``parallel: 4``: the shared
same-answer suite (``localai.testing.same_answer_suite``: twenty prompts, short, past 512 tokens, sharing prefixes,
multi-turn chats whose assistant turns the model wrote, answered twice in a row, after a sibling sharing the
prefix, eight at a time with half streamed, and on a restarted server in another order), plus prompts restored
from the RAM cache and the filler rule that keeps every decode multi-sequence.
"""

from __future__ import annotations

import pytest
from localai.testing import GGUF_NAME, ServerProcess
from localai.testing.same_answer import Answer, ask, differences
from localai.testing.same_answer_suite import SameAnswerSuite


def yaml(name: str = "gemma", *options: str) -> str:
    opts = ", ".join(repr(o) for o in ("parallel:4", *options))
    return f"name: {name}\nbackend: llama-cpp\ncontext_size: 8192\noptions: [{opts}]\nparameters:\n  model: {GGUF_NAME}\n"


class TestSameAnswer(SameAnswerSuite):
    # gemma-ram: a small host-RAM cache, so twenty prompts over four slots are restored from it
    models = {"gemma.yaml": yaml(), "ram.yaml": yaml("gemma-ram", "cache_ram:512")}

    def test_prompts_restored_from_the_ram_cache_give_the_same_answers(self, first: ServerProcess,
                                                                       chats: list[list[dict]],
                                                                       reference: list[Answer]) -> None:
        """Twenty prompts over four slots: on the second pass each prompt's slot holds another one, so its KV comes
        back from the RAM cache (the log says so), and the answer must not change."""
        cold = [ask(first, c, model="gemma-ram") for c in chats]
        cached: list[tuple[int, int]] = []
        restored = [ask(first, c, model="gemma-ram", cached=cached) for c in chats]
        assert differences(reference, cold) == [] and differences(reference, restored) == []
        # all but the prompt's last two tokens (always decoded) came back, for prompts no slot still held
        assert sum(hit == total - 2 for hit, total in cached) >= 16, cached


@pytest.mark.parametrize(("live", "n_slots", "fillers"), [
    ({0}, 1, []),  # one stream: every decode is alike already
    ({0}, 4, [1]),  # a lone slot gets its right-hand neighbour
    ({3}, 4, [2]),  # the last slot its left-hand one
    ({0, 1}, 4, []),  # neighbours already form one ubatch
    ({0, 2}, 4, [1]),  # the gap between them is filled
    ({0, 3}, 4, [1, 2]),
    ({1, 2, 3}, 4, []),
])
def test_every_decode_covers_a_run_of_at_least_two_consecutive_sequences(live: set[int], n_slots: int,
                                                                           fillers: list[int]) -> None:
    from localai_llama_cpp.scheduler import filler_seqs

    got = filler_seqs(live, n_slots)
    assert got == fillers
    run = sorted(live | set(got))
    assert n_slots == 1 or (len(run) >= 2 and run == list(range(run[0], run[-1] + 1)))
