"""One streamed ``/v1/completions`` request timed to its last token: the single-stream measurement the engine
benchmarks share (any OpenAI-compatible server: ours, ``vllm serve``)."""

from __future__ import annotations

import json
import time

import httpx


def streamed_tokens_per_second(url: str, model: str, prompt: str, tokens: int, bias: dict[str, float]) -> float:
    """Decode ``tokens`` greedily (end tokens banned through ``bias``) and return tokens/s; the server's own usage
    count must say exactly ``tokens``."""
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True,
            "logit_bias": bias, "stream_options": {"include_usage": True}}
    t = time.perf_counter()
    got = 0
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=900) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data: {"):
                usage = json.loads(line[6:]).get("usage")
                if usage:
                    got = usage["completion_tokens"]
    dt = time.perf_counter() - t
    assert got == tokens, f"streamed {got} tokens, expected {tokens}"
    return tokens / dt
