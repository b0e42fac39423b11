"""The same greedy request gets the same answer: twenty conversations and the helpers to compare answers, shared
by the llama.cpp-family backends' invariance tests (a plugin claiming invariance can use them too).

Twenty conversations: short prompts, prompts past 512 tokens (flash attention's split-KV length), pairs sharing a
long prefix, and multi-turn chats whose assistant turn the model itself wrote. Each answer is greedy with end
tokens banned, so every one runs ``MAX_TOKENS`` tokens, and carries each token's logprob.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai

from localai.testing.processes import ServerProcess

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

Answer = tuple[list[str], list[float]]


def client(srv: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=600, _strict_response_validation=True)


def ask(srv: ServerProcess, messages: list[dict], stream: bool = False, model: str = "gemma",
        cached: list[tuple[int, int]] | None = None) -> Answer:
    """Greedy, end tokens banned (every answer runs MAX_TOKENS tokens), with each token's logprob; ``cached``
    collects (cached prompt tokens, prompt tokens) of non-streamed answers."""
    kwargs: dict[str, Any] = dict(model=model, messages=messages, temperature=0, max_tokens=MAX_TOKENS, logprobs=True,
                                  extra_body={"ignore_eos": True})
    content: list[Any] | None
    if not stream:
        r = client(srv).chat.completions.create(stream=False, **kwargs)
        content = r.choices[0].logprobs.content if r.choices[0].logprobs else None
        if cached is not None and r.usage is not None:
            details = r.usage.prompt_tokens_details
            cached.append((details.cached_tokens if details and details.cached_tokens else 0, r.usage.prompt_tokens))
    else:
        content = []
        for chunk in client(srv).chat.completions.create(stream=True, **kwargs):
            if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
                content.extend(chunk.choices[0].logprobs.content)
    assert content is not None and len(content) == MAX_TOKENS
    return [t.token for t in content], [t.logprob for t in content]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def conversations(srv: ServerProcess, model: str = "gemma") -> list[list[dict]]:
    """The twenty conversations; the multi-turn ones carry an assistant turn the model itself wrote."""
    out = [user(p) for p in SHORT + LONG]
    for seed in SEEDS:
        answer = "".join(ask(srv, user(seed), model=model)[0])
        out.append([*user(seed), {"role": "assistant", "content": answer}, *user("And then?")])
    sizes = [client(srv).chat.completions.create(model=model, messages=c, max_tokens=1).usage.prompt_tokens  # type: ignore[union-attr,arg-type]
             for c in out]
    assert len(out) == 20 and sum(n > 512 for n in sizes) == 4, sizes  # four past 512 tokens (flash attention's split)
    return out


def sibling(conversation: list[dict]) -> list[dict]:
    """The conversation with its last message cut in half and ended otherwise: it shares the prefix."""
    last = conversation[-1]["content"]
    return [*conversation[:-1], {"role": "user", "content": last[: len(last) // 2] + " Briefly."}]


def gap(expected: Answer, got: Answer) -> float:
    """The largest difference between the two answers' logprobs, token by token."""
    return max(abs(a - b) for a, b in zip(expected[1], got[1]))


def differences(reference: list[Answer], got: list[Answer]) -> list[str]:
    out = []
    for i, (expected, answer) in enumerate(zip(reference, got)):
        if expected[0] != answer[0] or gap(expected, answer) > 1e-6:
            out.append(f"prompt {i}: {''.join(expected[0])!r} != {''.join(answer[0])!r} "
                       f"(logprob gap {gap(expected, answer):.3g})")
    return out


def twice_in_a_row(srv: ServerProcess, chats: list[list[dict]], cached: list[tuple[int, int]] | None = None) -> list[Answer]:
    """Each conversation asked twice in a row, the second answer kept (the cache then holds that very prompt)."""
    got = []
    for c in chats:
        ask(srv, c)
        got.append(ask(srv, c, cached=cached))
    return got


def after_siblings(srv: ServerProcess, chats: list[list[dict]]) -> list[Answer]:
    """Each conversation asked right after its sibling: the cache holds the shared prefix and another ending."""
    got = []
    for c in chats:
        ask(srv, sibling(c))
        got.append(ask(srv, c))
    return got


def together(srv: ServerProcess, chats: list[list[dict]]) -> list[Answer]:
    """All conversations, BATCH at a time, odd ones streamed."""
    with ThreadPoolExecutor(BATCH) as pool:
        return list(pool.map(lambda i: ask(srv, chats[i], stream=i % 2 == 1), range(len(chats))))


def restarted(models: Path, chats: list[list[dict]]) -> list[Answer]:
    """All conversations on a new server over ``models``, asked in reverse order and streamed."""
    with ServerProcess(models) as srv:
        got = {i: ask(srv, chats[i], stream=True) for i in reversed(range(len(chats)))}
    return [got[i] for i in range(len(chats))]
