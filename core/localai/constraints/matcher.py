"""One sequence's constraint state: the allowed-token mask before sampling, the sampled token after."""

from __future__ import annotations

from typing import Any

import numpy as np

from localai.constraints.errors import ConstraintViolation


class Matcher:
    """Wraps an ``llguidance.LLMatcher``; backends call :meth:`mask_logits` then :meth:`consume` each step.

    ``n_tokens`` is the tokenizer's vocabulary size; logits rows may be longer (padded vocabularies): the
    extra ids are never allowed. ``limiter`` (JSON schemas): a :class:`localai.constraints.limits.JsonLimiter`
    that narrows the grammar's mask so no number part runs past its digit limit and nothing nests past the depth limit.
    """

    def __init__(self, ll: Any, n_tokens: int, limiter: Any = None) -> None:
        self.ll = ll
        self.n_tokens = n_tokens
        self.limiter = limiter
        self.words = np.zeros((n_tokens + 31) // 32, dtype=np.int32)

    def bitmask(self) -> np.ndarray:
        """The next-token mask as packed int32 words (bit ``i % 32`` of word ``i // 32`` = token ``i`` allowed).

        For tensor backends (transformers, vLLM): ``llguidance.torch.apply_token_bitmask_inplace(logits,
        torch.from_numpy(m.bitmask()).to(logits.device))`` masks a torch logits row on its own device.
        """
        self.ll.unsafe_compute_mask_ptr(self.words.ctypes.data, self.words.nbytes)
        if self.ll.is_error():
            raise ConstraintViolation(f"the constraint failed: {self.ll.get_error()}")
        if self.limiter is not None:
            self.limiter.narrow(self.words)
        return self.words

    def allowed(self) -> np.ndarray:
        """A bool array over the vocabulary: which tokens may come next (end-of-sequence ones only when complete)."""
        words = self.bitmask()
        return np.unpackbits(words.view(np.uint8), bitorder="little")[: self.n_tokens].view(np.bool_)

    def mask_logits(self, logits: np.ndarray) -> None:
        """Set every disallowed token's logit to ``-inf``, in place (``logits`` is one row, float32)."""
        allowed = self.allowed()
        n = min(len(logits), self.n_tokens)
        idx = np.flatnonzero(allowed[:n])
        if len(idx) == 0:
            raise ConstraintViolation("no token can continue the constrained output")
        keep = logits[idx]
        logits.fill(-np.inf)
        logits[idx] = keep

    def consume(self, token: int) -> None:
        if not self.ll.consume_token(int(token)):
            raise ConstraintViolation(f"token {token} breaks the constraint: {self.ll.get_error()}")
        if self.limiter is not None:
            self.limiter.consumed(token)

    def allows(self, token: int) -> bool:
        """Whether ``token`` may come next (without consuming it)."""
        if self.ll.validate_tokens([int(token)]) != 1:
            return False
        if self.limiter is None or not self.limiter.forbids(token):
            return True
        t = int(token)  # over a digit limit: allowed only where the schema needs that digit (nothing else may come)
        return bool((int(self.bitmask()[t // 32]) >> (t % 32)) & 1)

    @property
    def done(self) -> bool:
        """Nothing but the end may follow: the caller can stop without sampling an end-of-sequence token."""
        return bool(self.ll.is_stopped())

    @property
    def accepting(self) -> bool:
        """The output so far is complete (it may still go on)."""
        return bool(self.ll.is_accepting())
