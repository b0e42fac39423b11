"""Enforcing ``request.constraint`` (JSON schema or GBNF grammar) on this backend's decode loop with llguidance.

Kept isolated so the integrator can switch it to the shared core constraint engine (``localai.constraints``):
the decode loop only calls :func:`compile_constraint` and the :class:`Enforcer` methods.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from localai.types import Constraint

_tokenizers: dict[int, Any] = {}
_lock = threading.Lock()


def ll_tokenizer(tokenizer: Any, n_vocab: int, eos: list[int]) -> Any:
    """llguidance's view of the HF tokenizer; built once per tokenizer (about a second)."""
    import llguidance.hf

    with _lock:
        key = id(tokenizer)
        if key not in _tokenizers:
            _tokenizers[key] = llguidance.hf.from_tokenizer(tokenizer, n_vocab=n_vocab, eos_token=eos or None)
        return _tokenizers[key]


def grammar_text(constraint: Constraint) -> str:
    import llguidance

    if constraint.type == "json_schema":
        # Compact JSON (one space after separators, no free newlines): with flexible whitespace a small model
        # can pad forever inside a forced object and never reach its content. A schema's own x-guidance wins.
        return llguidance.LLMatcher.grammar_from_json_schema(
            constraint.json_schema or {"type": "object"}, defaults={"whitespace_flexible": False})
    if constraint.type == "grammar" and constraint.grammar:
        return llguidance.grammar_from("gbnf", constraint.grammar)
    raise ValueError(f"constraint of type {constraint.type!r} carries no grammar or schema")


class Enforcer:
    """One request's matcher: masks the logits row before sampling and advances on each chosen token."""

    def __init__(self, matcher: Any, n_vocab: int) -> None:
        import llguidance.torch as lt

        self.matcher = matcher
        self._lt = lt
        self.bitmask = lt.allocate_token_bitmask(1, n_vocab)

    def mask(self, logits: torch.Tensor) -> None:
        """Leave only the tokens the grammar allows next (EOS once it accepts); in place on a 1-D row."""
        self._lt.fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        self._lt.apply_token_bitmask_inplace(logits.unsqueeze(0), self.bitmask.to(logits.device))

    def advance(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise RuntimeError(f"the constraint rejected token {token}: {self.matcher.get_error()}")

    @property
    def done(self) -> bool:
        """The grammar is complete and allows nothing more."""
        return bool(self.matcher.is_stopped())


def compile_constraint(constraint: Constraint | None, tokenizer: Any, n_vocab: int, eos: list[int]) -> Enforcer | None:
    """An :class:`Enforcer` for ``constraint``; ``ValueError`` (a 400) when it does not compile."""
    if constraint is None:
        return None
    import llguidance

    try:
        grammar = grammar_text(constraint)
        problem = llguidance.LLMatcher.validate_grammar(grammar)
        if problem:
            raise ValueError(problem)
    except ValueError as exc:
        raise ValueError(f"cannot build a constraint from the request: {exc}") from None
    matcher = llguidance.LLMatcher(ll_tokenizer(tokenizer, n_vocab, eos), grammar)
    if matcher.is_error():
        raise ValueError(f"cannot build a constraint from the request: {matcher.get_error()}")
    return Enforcer(matcher, n_vocab)
