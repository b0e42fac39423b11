"""Per-request llama.cpp sampler chains (in C), and logprobs read from a batch row's logits.

Each request gets its own chain so requests batched in one context keep their own temperature, seed,
penalties, bias and grammar. Worker-side only: imports ``llama_cpp``.
"""

from __future__ import annotations

import ctypes
import random
from typing import Any

import llama_cpp

from localai.types import GenerateRequest, TokenLogprob

# llama.cpp's own sampling defaults, used where neither the request nor the YAML sets a value.
DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0,
            "presence_penalty": 0.0, "frequency_penalty": 0.0}
PENALTY_LAST_N = 64  # llama-cpp-python's last_n_tokens_size


def _pick(request: GenerateRequest, name: str) -> Any:
    value = getattr(request.sampling, name)
    return DEFAULTS[name] if value is None else value


def build_sampler(vocab: Any, n_vocab: int, request: GenerateRequest, grammar: Any) -> Any:
    """A sampler chain in llama-cpp-python's order: bias, penalties, grammar, then greedy or top-k/p/min-p/temp/dist.

    ``grammar`` is a ``LlamaGrammar`` (or ``None``). Raises ``ValueError`` when the grammar does not parse.
    The caller owns the chain and frees it with :func:`free_sampler`.
    """
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = lambda s: llama_cpp.llama_sampler_chain_add(chain, s)  # noqa: E731
    try:
        bias = request.sampling.logit_bias
        if bias:
            arr = (llama_cpp.llama_logit_bias * len(bias))()
            for i, (tok, val) in enumerate(bias.items()):
                arr[i].token, arr[i].bias = int(tok), float(val)
            add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(bias), arr))
        repeat, freq, pres = _pick(request, "repeat_penalty"), _pick(request, "frequency_penalty"), _pick(request, "presence_penalty")
        if repeat != 1.0 or freq != 0.0 or pres != 0.0:
            # The vendored llama.cpp (0.3.36) still takes n_vocab first: (n_vocab, last_n, repeat, freq, present).
            add(llama_cpp.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, float(repeat), float(freq), float(pres)))
        if grammar is not None:
            g = llama_cpp.llama_sampler_init_grammar(vocab, grammar._grammar.encode(), grammar._root.encode())
            if not g:
                raise ValueError("cannot build a grammar from the constraint: llama.cpp rejected the grammar")
            add(g)
        temp = _pick(request, "temperature")
        if temp <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            seed = request.sampling.seed if request.sampling.seed is not None else random.randint(0, 2**31 - 1)
            add(llama_cpp.llama_sampler_init_top_k(int(_pick(request, "top_k"))))
            add(llama_cpp.llama_sampler_init_top_p(float(_pick(request, "top_p")), 1))
            add(llama_cpp.llama_sampler_init_min_p(float(_pick(request, "min_p")), 1))
            add(llama_cpp.llama_sampler_init_temp(float(temp)))
            add(llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
    except BaseException:
        free_sampler(chain)
        raise
    return chain


def free_sampler(chain: Any) -> None:
    if chain:
        llama_cpp.llama_sampler_free(chain)


def token_logprob(ctx: Any, idx: int, n_vocab: int, token: int, top: int, piece: Any) -> TokenLogprob:
    """The chosen token's log-probability under the raw logits of batch row ``idx``, with ``top`` alternatives."""
    import numpy as np

    ptr = llama_cpp.llama_get_logits_ith(ctx, idx)
    logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,)).astype(np.float64)
    m = logits.max()
    lp = logits - (m + np.log(np.exp(logits - m).sum()))
    text = piece(token)
    alts: list[tuple[str, float]] = []
    if top > 0:
        best = np.argpartition(-lp, top)[:top]
        best = best[np.argsort(-lp[best])]
        alts = [(piece(int(t)).decode("utf-8", "replace"), float(lp[t])) for t in best]
    return TokenLogprob(token=text.decode("utf-8", "replace"), logprob=float(lp[token]), bytes=list(text), top=alts)
