"""One constraint engine for every backend: JSON schema / regex / grammar -> an exactly enforced token mask.

Built on llguidance. The server calls :func:`check` while planning a request (a schema the engine cannot
enforce, or one too expensive to compile, is a 400 naming the keyword and its path); a backend builds a
tokenizer description once per model (:mod:`localai.constraints.tokenizer`), compiles each request's
constraint against it (:func:`compile_constraint`, cached) and drives one :class:`Matcher` per sequence:
``mask_logits`` before sampling, ``consume`` after, ``done`` when nothing but the end may follow.
"""

from __future__ import annotations

from typing import Any

from localai.constraints.compiler import Compiled, check, compile_constraint, grammar_for
from localai.constraints.errors import ConstraintRefused, ConstraintViolation


def __getattr__(name: str) -> Any:
    if name == "Matcher":  # numpy only where tokens are masked (workers), not in the server at import
        from localai.constraints.matcher import Matcher

        return Matcher
    raise AttributeError(name)

__all__ = ["Compiled", "ConstraintRefused", "ConstraintViolation", "Matcher", "check", "compile_constraint",
           "grammar_for"]
