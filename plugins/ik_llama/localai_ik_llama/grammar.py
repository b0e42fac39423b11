"""Decoding constraints on ik_llama.cpp through the shared engine (:mod:`localai.constraints`, llguidance).

The engine's own GBNF sampler is not used: it has no JSON-schema converter, and llama.cpp's converter loosens
or blows up on real schemas. Instead the vocabulary is described to llguidance once per model (every token's
bytes, read with ``llama_token_to_piece``; control tokens, whose plain piece is empty, marked special) and each
request's matcher masks the candidate logits in :meth:`localai_ik_llama.sampling.Sampler.sample`.

No engine import at module level: the server process may use :func:`converter_available`.
"""

from __future__ import annotations

import importlib.util
from typing import Any

MISSING = "ik-llama-cpp enforces constraints with llguidance, which is not installed (pip install llguidance)"


def _engine_spec() -> Any:
    return importlib.util.find_spec("llguidance")


def converter_available() -> bool:
    """Whether this backend can enforce constraints (it advertises ``grammar`` then)."""
    return _engine_spec() is not None


def vocab_tokenizer(model: int) -> Any:
    """An ``llguidance.LLTokenizer`` for an ik_llama.cpp model handle (walks the whole vocabulary)."""
    if not converter_available():
        raise NotImplementedError(MISSING)
    from localai.constraints.tokenizer import from_pieces

    from localai_ik_llama import capi

    n = int(capi.n_vocab(model))
    pieces: list[bytes] = []
    special: list[int] = []
    end: list[int] = []
    for t in range(n):
        text = capi.piece(model, t, special=True)
        pieces.append(text)
        if text and not capi.piece(model, t, special=False):
            special.append(t)  # rendered only as a special token: a control token
        if capi.token_is_eog(model, t):
            end.append(t)
    eos = int(capi.token_eos(model))
    end = ([eos] if eos in end else []) + [t for t in end if t != eos]
    bos = int(capi.token_bos(model))
    return from_pieces(pieces, special=special, end=end, bos=bos if bos >= 0 else None,
                       encode=lambda b: capi.tokens_of(model, b.decode("utf-8", "replace"), False, False))


def constraint_matcher(tokenizer: Any, constraint: Any) -> Any:
    """A fresh per-request matcher; :class:`localai.constraints.ConstraintRefused` (a ``ValueError``) when refused."""
    from localai.constraints import compile_constraint

    return compile_constraint(constraint, tokenizer).matcher()
