"""Tokenizer descriptions for the constraint engine, built once per loaded model (it walks the whole vocabulary).

A backend describes its vocabulary as the bytes of every token, which ids are special (control) tokens, which
end a generation, and how to tokenize text; :func:`from_pieces` turns that into an ``llguidance.LLTokenizer``.
llama.cpp-family backends read the pieces from their vocab (``localai_llama_cpp.constraint``,
``localai_ik_llama.grammar``); Hugging Face backends use :func:`from_hf`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

SPECIAL_PREFIX = b"\xff"  # llguidance's marker for a special token: never matched by grammar text


class _Vocabulary:
    """What ``llguidance.TokenizerWrapper`` reads from a tokenizer."""

    def __init__(self, tokens: list[bytes], eos: int, bos: int | None, special: list[int],
                 encode: Callable[[bytes], list[int]]) -> None:
        self.tokens = tokens
        self.eos_token_id = eos
        self.bos_token_id = bos
        self.special_token_ids = special
        self._encode = encode

    def __call__(self, text: bytes) -> list[int]:
        return list(self._encode(text))


def from_pieces(pieces: Sequence[bytes], *, special: Iterable[int], end: Sequence[int],
                encode: Callable[[bytes], list[int]], bos: int | None = None, n_vocab: int | None = None) -> Any:
    """An ``LLTokenizer`` from each token's bytes (``pieces[i]``), the special ids, the ids that end a generation
    (the first is the main one) and ``encode`` (bytes -> ids, no BOS)."""
    import llguidance

    special = sorted(set(special))
    tokens = list(pieces)
    for t in special:
        if tokens[t] and not tokens[t].startswith(SPECIAL_PREFIX):
            tokens[t] = SPECIAL_PREFIX + tokens[t]
    end = list(dict.fromkeys(end))
    if not end:
        raise ValueError("the vocabulary has no end-of-generation token")
    vocab = _Vocabulary(tokens, end[0], bos, special, encode)
    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(vocab), n_vocab=n_vocab, eos_token=end)


def from_hf(tokenizer: Any, end: Sequence[int] | None = None, n_vocab: int | None = None) -> Any:
    """An ``LLTokenizer`` for a fast Hugging Face tokenizer (transformers, vLLM backends)."""
    from llguidance.hf import from_tokenizer

    eos = list(end) if end else None
    return from_tokenizer(tokenizer, n_vocab=n_vocab, eos_token=eos)
