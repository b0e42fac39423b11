"""The same greedy request gets the same answer, token for token and in logprobs, whatever the server did before.

Default settings (flash attention on, prompt cache on) with ``parallel: 4``. Twenty prompts (short, past 512
tokens, sharing prefixes, multi-turn chats whose assistant turns the model wrote) are answered first on a fresh
server one at a time (the reference), then: again (the prompt cache holds each whole prompt), after a sibling that
shares its prefix, streamed, eight at a time concurrently, and on a restarted server in another order. Every answer
must equal the reference (tokens identical, logprobs within 1e-6), the outcome a user evaluating or replaying on
greedy output relies on.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from localai.testing import GGUF_NAME, ServerProcess, write_models

MAX_TOKENS = 10
BATCH = 8

STORY = "The lighthouse keeper climbed the stairs every evening and lit the lamp before the ships came in. "
RECIPE = "Mix flour, water, salt and yeast, knead the dough for ten minutes, let it rise for an hour, then bake. "
SHORT = ["Say a city.", "Name three primary colors.", "Tell a story.", "What is 2 + 2?", "Translate 'cat' into French.",
         "Write a haiku about rain.", "List two planets.", "Why is the sky blue?"]
# past 512 tokens, and pairs that share a long prefix with each other
LONG = [STORY * 30 + "What did the keeper do?", STORY * 30 + "Who came in?", RECIPE * 28 + "How long does it rise?",
        RECIPE * 28 + "What goes in the dough?", STORY * 8 + "Summarise.", RECIPE * 9 + "Is yeast needed?"]
SEEDS = ["Tell me about the sea.", "Give me a number.", "Name a colour.", "Describe a cat.", "Say hello.",
         "Count to three."]  # first turns of the multi-turn chats


def yaml(name: str = "gemma", *options: str) -> str:
    opts = ", ".join(repr(o) for o in ("parallel:4", *options))
    return f"name: {name}\nbackend: llama-cpp\ncontext_size: 8192\noptions: [{opts}]\nparameters:\n  model: {GGUF_NAME}\n"


def client(srv: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=600, _strict_response_validation=True)


Answer = tuple[list[str], list[float]]


def ask(srv: ServerProcess, messages: list[dict], stream: bool = False, model: str = "gemma",
        cached: list[tuple[int, int]] | None = None) -> Answer:
    """Greedy, end tokens banned (every answer runs MAX_TOKENS tokens), with each token's logprob; ``cached``
    collects (cached prompt tokens, prompt tokens) of non-streamed answers."""
    kwargs = dict(model=model, messages=messages, temperature=0, max_tokens=MAX_TOKENS, logprobs=True,
                  extra_body={"ignore_eos": True})
    if not stream:
        r = client(srv).chat.completions.create(**kwargs)  # type: ignore[arg-type]
        content = r.choices[0].logprobs.content  # type: ignore[union-attr]
        if cached is not None and r.usage is not None:
            details = r.usage.prompt_tokens_details
            cached.append((details.cached_tokens if details and details.cached_tokens else 0, r.usage.prompt_tokens))
    else:
        content = []
        for chunk in client(srv).chat.completions.create(stream=True, **kwargs):  # type: ignore[arg-type]
            if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
                content.extend(chunk.choices[0].logprobs.content)
    assert content is not None and len(content) == MAX_TOKENS
    return [t.token for t in content], [t.logprob for t in content]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def differences(reference: list[Answer], got: list[Answer]) -> list[str]:
    out = []
    for i, ((tokens, lps), (tokens2, lps2)) in enumerate(zip(reference, got)):
        if tokens != tokens2 or max(abs(a - b) for a, b in zip(lps, lps2)) > 1e-6:
            out.append(f"prompt {i}: {''.join(tokens)!r} != {''.join(tokens2)!r} "
                       f"(logprob gap {max(abs(a - b) for a, b in zip(lps, lps2)):.3g})")
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # gemma-ram: the same settings plus a host-RAM prompt cache, which restores whole earlier prompts into a slot
    return write_models(tmp_path_factory.mktemp("same-answer"), {"gemma.yaml": yaml(),
                                                                 "ram.yaml": yaml("gemma-ram", "cache_ram:512")})


@pytest.fixture(scope="module")
def first(folder: Path) -> Iterator[ServerProcess]:
    with ServerProcess(folder) as srv:
        yield srv


@pytest.fixture(scope="module")
def chats(first: ServerProcess) -> list[list[dict]]:
    """The twenty conversations; the multi-turn ones carry an assistant turn the model itself wrote."""
    out = [user(p) for p in SHORT + LONG]
    for seed in SEEDS:
        answer = "".join(ask(first, user(seed))[0])
        out.append([*user(seed), {"role": "assistant", "content": answer}, *user("And then?")])
    sizes = [client(first).chat.completions.create(model="gemma", messages=c, max_tokens=1).usage.prompt_tokens  # type: ignore[union-attr]
             for c in out]
    assert len(out) == 20 and sum(n > 512 for n in sizes) == 4, sizes  # four past 512 tokens (flash attention's split)
    return out


@pytest.fixture(scope="module")
def reference(first: ServerProcess, chats: list[list[dict]]) -> list[Answer]:
    return [ask(first, c) for c in chats]


def test_a_warm_prompt_cache_gives_the_same_answer(first: ServerProcess, chats: list[list[dict]],
                                                   reference: list[Answer]) -> None:
    assert differences(reference, [ask(first, c) for c in chats]) == []


def test_a_sibling_sharing_the_prefix_first_gives_the_same_answer(first: ServerProcess, chats: list[list[dict]],
                                                                  reference: list[Answer]) -> None:
    got = []
    for c in chats:
        sibling = [*c[:-1], {"role": "user", "content": c[-1]["content"][: len(c[-1]["content"]) // 2] + " Briefly."}]
        ask(first, sibling)  # the slot now holds the shared prefix and another ending
        got.append(ask(first, c))
    assert differences(reference, got) == []


def test_eight_concurrent_requests_streamed_or_not_give_their_solo_answers(first: ServerProcess, chats: list[list[dict]],
                                                                          reference: list[Answer]) -> None:
    with ThreadPoolExecutor(BATCH) as pool:
        got = list(pool.map(lambda i: ask(first, chats[i], stream=i % 2 == 1), range(len(chats))))
    assert differences(reference, got) == []


def test_prompts_restored_from_the_ram_cache_give_the_same_answers(first: ServerProcess, chats: list[list[dict]],
                                                                   reference: list[Answer]) -> None:
    """Twenty prompts over four slots: on the second pass each prompt's slot holds another one, so its KV comes
    back from the RAM cache (the log says so), and the answer must not change."""
    cold = [ask(first, c, model="gemma-ram") for c in chats]
    cached: list[tuple[int, int]] = []
    restored = [ask(first, c, model="gemma-ram", cached=cached) for c in chats]
    assert differences(reference, cold) == [] and differences(reference, restored) == []
    # all but the prompt's last two tokens (always decoded) came back, for prompts no slot still held
    assert sum(hit == total - 2 for hit, total in cached) >= 16, cached


def test_a_restarted_server_gives_the_same_answers_in_another_order(folder: Path, chats: list[list[dict]],
                                                                    reference: list[Answer]) -> None:
    order = list(reversed(range(len(chats))))
    with ServerProcess(folder) as srv:
        got = {i: ask(srv, chats[i], stream=True) for i in order}
    assert differences(reference, [got[i] for i in range(len(chats))]) == []


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
