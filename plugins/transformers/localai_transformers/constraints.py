"""Enforcing ``request.constraint`` (JSON schema, grammar, regex) on this backend's decode loop.

Through the core's one constraint engine (:mod:`localai.constraints`): the same normalised schema, llguidance
options and compile limits as llama-cpp, ik-llama-cpp and vLLM, so a schema accepts the same outputs on every
backend. This module only adapts the engine's packed mask to torch logits rows.
"""

from __future__ import annotations

import threading
from typing import Any

import torch
from localai.types import Constraint

_tokenizers: dict[int, Any] = {}
_lock = threading.Lock()


def ll_tokenizer(tokenizer: Any, n_vocab: int, eos: list[int]) -> Any:
    """The constraint engine's view of the HF tokenizer; built once per tokenizer (about a second)."""
    from localai.constraints.tokenizer import from_hf

    with _lock:
        key = id(tokenizer)
        if key not in _tokenizers:
            _tokenizers[key] = from_hf(tokenizer, end=eos or None, n_vocab=n_vocab)
        return _tokenizers[key]


class Enforcer:
    """One request's :class:`localai.constraints.Matcher`: masks the logits row before sampling and advances on
    each chosen token (a disallowed one raises ``ConstraintViolation``)."""

    def __init__(self, matcher: Any, grammar: str) -> None:
        import llguidance.torch as lt

        self.matcher = matcher
        self.grammar = grammar  # what the engine compiled: the core's grammar for the constraint
        self._apply = lt.apply_token_bitmask_inplace

    def mask(self, logits: torch.Tensor) -> None:
        """Leave only the tokens the constraint allows next (an end token once it accepts); in place on a 1-D row."""
        words = torch.from_numpy(self.matcher.bitmask()).unsqueeze(0)
        self._apply(logits.unsqueeze(0), words.to(logits.device))

    def advance(self, token: int) -> None:
        self.matcher.consume(token)

    @property
    def done(self) -> bool:
        """The constraint is complete and allows nothing more."""
        return self.matcher.done


def compile_constraint(constraint: Constraint | None, tokenizer: Any, n_vocab: int, eos: list[int]) -> Enforcer | None:
    """An :class:`Enforcer` for ``constraint`` (compiled grammars are cached by the engine); a ``ValueError``
    (``ConstraintRefused``, a 400) when it cannot be enforced."""
    if constraint is None:
        return None
    from localai.constraints import compile_constraint as compile_shared

    compiled = compile_shared(constraint, ll_tokenizer(tokenizer, n_vocab, eos))
    return Enforcer(compiled.matcher(), compiled.grammar)
