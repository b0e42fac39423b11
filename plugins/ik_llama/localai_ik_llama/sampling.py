"""Token sampling in C: logits are copied into a numpy candidate array, the engine's samplers filter it.

The wheel's own sampler builds the 262k-entry candidate list in a Python loop; here one
vectorised copy fills a preallocated array laid out exactly like ``llama_token_data``.
Constrained requests carry a :class:`localai.constraints.Matcher` (the shared engine), checked lazily against
the sampled token (see :meth:`Sampler.sample`) so the full-vocabulary mask is only computed when the model strays.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np
from ik_llama_cpp import _ctypes_api as C

from localai_ik_llama import capi

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
assert TOKEN_DATA.itemsize == ctypes.sizeof(C.llama_token_data)

# llama.cpp's own defaults, used where neither the request nor the YAML sets a value.
DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0,
            "presence_penalty": 0.0, "frequency_penalty": 0.0}


@dataclass
class Settings:
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    repeat_penalty: float
    presence_penalty: float
    frequency_penalty: float
    logit_bias: dict[int, float] | None = None

    @property
    def penalised(self) -> bool:
        return self.repeat_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0


def settings(sampling: object) -> Settings:
    """Request sampling params (``None`` = unset) completed with the engine defaults."""
    values = {name: getattr(sampling, name) if getattr(sampling, name) is not None else default
              for name, default in DEFAULTS.items()}
    return Settings(**values, logit_bias=getattr(sampling, "logit_bias", None))


class Sampler:
    """Picks the next token from a context's last logits; one per model, used under its lock."""

    def __init__(self, ctx: int, vocab_size: int) -> None:
        self.ctx = ctx
        self.n = vocab_size
        self.ids = np.arange(vocab_size, dtype=np.int32)
        self.cand = np.zeros(vocab_size, dtype=TOKEN_DATA)
        self.array = C.llama_token_data_array()
        self.ref = ctypes.pointer(self.array)

    def logits(self) -> np.ndarray:
        """The last decoded position's logits (a view into the engine's buffer)."""
        return np.ctypeslib.as_array(capi.get_logits_ith(self.ctx, -1), shape=(self.n,))

    def seed(self, seed: int) -> None:
        capi.set_rng_seed(self.ctx, seed & 0xFFFFFFFF)

    def _fill(self, s: Settings, recent: list[int]) -> None:
        """Reset the candidate array to the raw logits, plus logit bias and repetition penalties."""
        logits = self.logits()
        self.cand["id"] = self.ids
        self.cand["logit"] = logits
        self.cand["p"] = 0.0
        if s.logit_bias:
            ids = np.fromiter((int(k) for k in s.logit_bias), dtype=np.int64)
            ok = (ids >= 0) & (ids < self.n)
            vals = np.fromiter((float(v) for v in s.logit_bias.values()), dtype=np.float32)
            np.add.at(self.cand["logit"], ids[ok], vals[ok])
        arr = self.array
        arr.data = self.cand.ctypes.data_as(ctypes.POINTER(C.llama_token_data))
        arr.size = self.n
        arr.selected = -1
        arr.sorted = False
        if s.penalised and recent:
            buf = (C.llama_token * len(recent))(*recent)
            capi.sample_repetition_penalties(self.ctx, self.ref, buf, len(recent), s.repeat_penalty,
                                             s.frequency_penalty, s.presence_penalty)

    def _pick(self, s: Settings) -> int:
        """Greedy, or top-k / top-p / min-p / temperature then a draw, over the filled candidates."""
        if s.temperature <= 0:
            return int(capi.sample_token_greedy(self.ctx, self.ref))
        if s.top_k > 0:  # <= 0 disables top-k, as in llama.cpp
            capi.sample_top_k(self.ctx, self.ref, s.top_k, 1)
        if s.top_p < 1.0:
            capi.sample_top_p(self.ctx, self.ref, s.top_p, 1)
        if s.min_p > 0.0:
            capi.sample_min_p(self.ctx, self.ref, s.min_p, 1)
        capi.sample_temp(self.ctx, self.ref, s.temperature)
        return int(capi.sample_token(self.ctx, self.ref))

    def sample(self, s: Settings, recent: list[int], matcher: Any = None) -> int:
        """The next token; ``recent`` are the tokens the repetition penalties look at.

        With a ``matcher`` (llama.cpp's own shortcut): sample unconstrained, check only that token, and only
        when it is rejected mask all candidates and sample again; for a plain draw this is exactly sampling
        from the masked distribution. The caller consumes the returned token into the matcher.
        """
        self._fill(s, recent)
        token = self._pick(s)
        if matcher is None or matcher.allows(token):
            return token
        self._fill(s, recent)
        matcher.mask_logits(self.cand["logit"])
        token = self._pick(s)
        if not matcher.allows(token):  # every allowed token was masked out (e.g. by logit_bias -inf)
            raise ValueError("no token the constraint allows can be sampled here (check logit_bias)")
        return token

    def logprobs(self) -> np.ndarray:
        """Log-softmax of the raw logits (before sampling filters), for ``logprobs``."""
        x = self.logits().astype(np.float64)
        m = x.max()
        return x - (m + np.log(np.exp(x - m).sum()))
