"""The two OpenAI logprobs shapes: chat's per-token objects and legacy completions' parallel lists."""

from __future__ import annotations

from typing import Any

from localai.types import TokenLogprob


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8"))


def chat_logprobs(items: list[TokenLogprob]) -> dict[str, Any]:
    """``choices[].logprobs`` of a chat completion (or one chunk's slice of it)."""
    content = [
        {
            "token": item.token,
            "logprob": item.logprob,
            "bytes": item.bytes if item.bytes is not None else _bytes(item.token),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": _bytes(t)} for t, lp in item.top],
        }
        for item in items
    ]
    return {"content": content, "refusal": None}


def legacy_logprobs(items: list[TokenLogprob], offset: int) -> dict[str, Any]:
    """``choices[].logprobs`` of a text completion; ``offset`` is where this text starts in the choice."""
    tokens, lps, tops, offsets = [], [], [], []
    pos = offset
    for item in items:
        tokens.append(item.token)
        lps.append(item.logprob)
        tops.append({t: lp for t, lp in item.top})
        offsets.append(pos)
        pos += len(item.token)
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}
