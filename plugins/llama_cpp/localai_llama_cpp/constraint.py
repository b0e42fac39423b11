"""The shared constraint engine (:mod:`localai.constraints`) on a llama.cpp vocabulary. Worker-side only.

The tokenizer description walks all ``n_vocab`` tokens (about 5 s for Gemma's 262k), so it is built once per
model in a background thread started at load, and the first constrained request waits for it.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import llama_cpp
from localai.constraints import Matcher, compile_constraint
from localai.constraints.tokenizer import from_pieces
from localai.types import GenerateRequest


def vocab_tokenizer(llm: Any, stop: threading.Event | None = None) -> Any:
    """An ``llguidance.LLTokenizer`` for ``llm``'s vocab: every token's bytes, control tokens marked special.

    ``stop`` ends the walk early (the model is being closed: reading a freed vocab would crash the worker).
    """
    vocab = llm._model.vocab
    n = int(llama_cpp.llama_vocab_n_tokens(vocab))
    size = 256
    buf = ctypes.create_string_buffer(size)
    pieces: list[bytes] = []
    special: list[int] = []
    end: list[int] = []
    get_attr = getattr(llama_cpp, "llama_vocab_get_attr", None) or llama_cpp.llama_token_get_attr
    control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
    user = llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    for t in range(n):
        if stop is not None and t % 4096 == 0 and stop.is_set():
            raise RuntimeError("the model was closed")
        k = llama_cpp.llama_token_to_piece(vocab, t, buf, size, 0, True)
        if k < 0:
            big = ctypes.create_string_buffer(-k)
            k = llama_cpp.llama_token_to_piece(vocab, t, big, -k, 0, True)
            piece = big.raw[:k]
        else:
            piece = buf.raw[:k]
        pieces.append(piece)
        attr = get_attr(vocab, t)
        if attr & control or (attr & user and piece.startswith(b"<") and piece.endswith(b">")):
            special.append(t)
        if llama_cpp.llama_vocab_is_eog(vocab, t):
            end.append(t)
    eos = int(llama_cpp.llama_vocab_eos(vocab))
    end = ([eos] if eos in end else []) + [t for t in end if t != eos]
    bos = int(llama_cpp.llama_vocab_bos(vocab))
    return from_pieces(pieces, special=special, end=end, bos=bos if bos >= 0 else None, n_vocab=int(llm.n_vocab()),
                       encode=lambda b: llm.tokenize(b, add_bos=False, special=False))


class VocabTokenizer:
    """Builds the tokenizer description on the first constrained request; :meth:`get` waits for it (re-raising
    its failure). Not at load: the walk over the vocabulary (about 2 s for Gemma's 262k tokens here) holds the GIL
    and a core, and running it in the background right after a load halved the first requests' decode speed."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._stop = threading.Event()
        self._started = threading.Lock()
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        with self._started:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._build, name="constraint-vocab", daemon=True)
                self._thread.start()

    def _build(self) -> None:
        try:
            self._value = vocab_tokenizer(self._llm, self._stop)
        except BaseException as exc:  # noqa: BLE001 - reported to the first constrained request
            self._error = exc
        finally:
            self._done.set()

    def close(self) -> None:
        """Stop the walk and wait for it, so the caller may free the model afterwards."""
        with self._started:
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join()
        self._done.set()

    def get(self) -> Any:
        self._start()
        self._done.wait()
        if self._value is None and self._error is None:
            raise RuntimeError("the model was closed")
        if self._error is not None:
            raise RuntimeError(f"cannot describe this model's vocabulary to the constraint engine: {self._error}")
        return self._value


def request_matcher(tokenizer: VocabTokenizer, request: GenerateRequest) -> Matcher | None:
    """A fresh matcher for ``request.constraint`` (``None`` without one); refusals raise before any decoding."""
    if request.constraint is None:
        return None
    return compile_constraint(request.constraint, tokenizer.get()).matcher()
