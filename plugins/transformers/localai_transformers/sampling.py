"""Per-request next-token choice on a logits row: bias, penalties, constraint mask, then greedy or
temperature/top-k/top-p/min-p sampling from the request's own seeded generator; plus logprobs."""

from __future__ import annotations

import random
from typing import Any

import torch
from localai.types import GenerateRequest, TokenLogprob

# Defaults where neither the request, the YAML nor the model's generation_config sets a value: llama.cpp's,
# so one YAML samples alike on either backend.
DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0,
            "presence_penalty": 0.0, "frequency_penalty": 0.0}
PENALTY_LAST_N = 64  # tokens the penalties look back over (llama.cpp's default window)


def model_defaults(generation_config: Any) -> dict[str, Any]:
    """Sampling values a model ships in its generation_config (only when it samples by default)."""
    if generation_config is None or not getattr(generation_config, "do_sample", False):
        return {}
    out = {}
    for name, attr in (("temperature", "temperature"), ("top_k", "top_k"), ("top_p", "top_p"), ("min_p", "min_p"),
                       ("repeat_penalty", "repetition_penalty")):
        value = getattr(generation_config, attr, None)
        if value is not None:
            out[name] = value
    return out


class Sampler:
    """Built once per request (validation errors raise before the request is accepted)."""

    def __init__(self, request: GenerateRequest, vocab_size: int, device: str, shipped: dict[str, Any]) -> None:
        s = request.sampling

        def pick(name: str) -> Any:
            value = getattr(s, name)
            return value if value is not None else shipped.get(name, DEFAULTS[name])

        self.temperature = float(pick("temperature"))
        self.top_k = int(pick("top_k"))
        self.top_p = float(pick("top_p"))
        self.min_p = float(pick("min_p"))
        self.repeat = float(pick("repeat_penalty"))
        self.presence = float(pick("presence_penalty"))
        self.frequency = float(pick("frequency_penalty"))
        if self.repeat <= 0:
            raise ValueError(f"repeat_penalty must be positive, got {self.repeat}")
        self.bias: tuple[torch.Tensor, torch.Tensor] | None = None
        if s.logit_bias:
            ids = [int(t) for t in s.logit_bias]
            bad = [t for t in ids if not 0 <= t < vocab_size]
            if bad:
                raise ValueError(f"logit_bias token id(s) {bad[:5]} out of range: the vocabulary has {vocab_size} tokens")
            self.bias = (torch.tensor(ids, device=device), torch.tensor([float(v) for v in s.logit_bias.values()], device=device))
        self.generator: torch.Generator | None = None
        if self.temperature > 0:
            seed = s.seed if s.seed is not None else random.randint(0, 2**31 - 1)
            self.generator = torch.Generator(device=device).manual_seed(int(seed) & 0xFFFF_FFFF_FFFF)

    def process(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """Bias and penalties on a float32 logits row (``history``: prompt and generated ids, 1-D)."""
        if self.bias is not None:
            logits.index_add_(0, self.bias[0], self.bias[1])
        if self.repeat != 1.0 or self.presence or self.frequency:
            window = history[-PENALTY_LAST_N:]
            if window.numel():
                ids, counts = torch.unique(window, return_counts=True)
                vals = logits[ids]
                if self.repeat != 1.0:
                    vals = torch.where(vals > 0, vals / self.repeat, vals * self.repeat)
                vals = vals - counts.to(vals.dtype) * self.frequency - self.presence
                logits[ids] = vals
        return logits

    def choose(self, logits: torch.Tensor) -> int:
        """Greedy at temperature <= 0; else temperature, top-k, top-p, min-p, then a draw from the seeded generator."""
        if self.temperature <= 0:
            return int(torch.argmax(logits))
        logits = logits / self.temperature
        if 0 < self.top_k < logits.numel():
            kth = torch.topk(logits, self.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            cum = torch.cumsum(sorted_p, 0)
            drop = cum - sorted_p > self.top_p  # keep the smallest prefix reaching top_p (at least one token)
            probs = probs.index_fill(0, order[drop], 0.0)
        if self.min_p > 0:
            probs = probs.masked_fill(probs < self.min_p * probs.max(), 0.0)
        return int(torch.multinomial(probs, 1, generator=self.generator))


def token_logprob(raw: torch.Tensor, token: int, top: int, piece: Any) -> TokenLogprob:
    """The chosen token's log-probability under the model's raw logits, with ``top`` alternatives."""
    lp = torch.log_softmax(raw.double(), dim=-1)
    text = piece(token)
    alts: list[tuple[str, float]] = []
    if top > 0:
        values, ids = torch.topk(lp, min(top, lp.numel()))
        alts = [(piece(int(t)), float(v)) for v, t in zip(values, ids)]
    return TokenLogprob(token=text, logprob=float(lp[token]), bytes=list(text.encode("utf-8")), top=alts)
