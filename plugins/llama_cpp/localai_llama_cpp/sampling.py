"""Per-request llama.cpp sampler chains (in C), and logprobs read from a batch row's logits.

Each request gets its own chain so requests batched in one context keep their own temperature, seed,
penalties, bias and grammar. Worker-side only: imports ``llama_cpp``.
"""

from __future__ import annotations

import ctypes
import random
from typing import Any

import llama_cpp
import numpy as np
from localai.types import GenerateRequest, TokenLogprob

# llama.cpp's own sampling defaults, used where neither the request nor the YAML sets a value.
DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0,
            "presence_penalty": 0.0, "frequency_penalty": 0.0}
PENALTY_LAST_N = 64  # llama-cpp-python's last_n_tokens_size


def _pick(request: GenerateRequest, name: str) -> Any:
    value = getattr(request.sampling, name)
    return DEFAULTS[name] if value is None else value


def _bias(request: GenerateRequest, n_vocab: int) -> list[tuple[int, float]]:
    """The request's ``logit_bias`` as (token, bias) pairs; ``ValueError`` for a token outside the vocabulary."""
    bias = request.sampling.logit_bias or {}
    outside = [t for t in bias if not 0 <= int(t) < n_vocab]
    if outside:  # llama.cpp would index past its logits
        raise ValueError(f"logit_bias token id {outside[0]} is outside the model's vocabulary (0..{n_vocab - 1})")
    return [(int(t), float(v)) for t, v in bias.items()]


def _penalised(request: GenerateRequest) -> bool:
    return (_pick(request, "repeat_penalty") != 1.0 or _pick(request, "frequency_penalty") != 0.0
            or _pick(request, "presence_penalty") != 0.0)


class Greedy:
    """Greedy decoding as a numpy argmax over the row's logits, the request's bias added in place and undone.

    The same pick as llama.cpp's logit-bias + greedy chain (float32 addition, the first of equal maxima), at a
    tenth of the cost: ``llama_sampler_sample`` copies all 262,144 of Gemma's logits into a candidate array
    and scans it with scalar compares, about 0.5 ms a token on one core while the other decode threads wait.
    The logits buffer is left as it was, so logprobs still read the model's own distribution.
    """

    def __init__(self, bias: list[tuple[int, float]]) -> None:
        self.ids = np.array([t for t, _ in bias], dtype=np.intp)
        self.values = np.array([v for _, v in bias], dtype=np.float32)
        # Bias that only lowers (banned tokens, ignore_eos) cannot change an argmax it does not touch.
        self.lowering = {t for t, v in bias} if all(v <= 0 for _, v in bias) else None

    def pick(self, logits: Any) -> int:
        if not len(self.ids):
            return int(logits.argmax())
        if self.lowering is not None:
            best = int(logits.argmax())
            if best not in self.lowering:
                return best
        saved = logits[self.ids]
        np.add.at(logits, self.ids, self.values)  # one float32 add per entry, in order, as the C sampler does
        try:
            return int(logits.argmax())
        finally:
            logits[self.ids] = saved


def greedy(request: GenerateRequest, n_vocab: int) -> Greedy | None:
    """A :class:`Greedy` picker when the request decodes greedily with nothing stateful in its chain (no
    penalties); ``None`` when it needs the C sampler chain from :func:`build_sampler`."""
    if _pick(request, "temperature") > 0 or _penalised(request):
        return None
    return Greedy(_bias(request, n_vocab))


def build_sampler(n_vocab: int, request: GenerateRequest) -> Any:
    """A sampler chain in llama-cpp-python's order: bias, penalties, then greedy or top-k/p/min-p/temp/dist.

    Constraints are not in the chain: the scheduler masks the logits with the request's matcher first.
    The caller owns the chain and frees it with :func:`free_sampler`.
    """
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = lambda s: llama_cpp.llama_sampler_chain_add(chain, s)  # noqa: E731
    try:
        bias = _bias(request, n_vocab)
        if bias:
            arr = (llama_cpp.llama_logit_bias * len(bias))()
            for i, (tok, val) in enumerate(bias):
                arr[i].token, arr[i].bias = tok, val
            add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(bias), arr))
        repeat, freq, pres = _pick(request, "repeat_penalty"), _pick(request, "frequency_penalty"), _pick(request, "presence_penalty")
        if _penalised(request):
            # The vendored llama.cpp (0.3.36) still takes n_vocab first: (n_vocab, last_n, repeat, freq, present).
            add(llama_cpp.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, float(repeat), float(freq), float(pres)))
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


def token_logprob(ctx: Any, idx: int, n_vocab: int, token: int, top: int, piece: Any, raw: Any = None) -> TokenLogprob:
    """The chosen token's log-probability under the raw logits of batch row ``idx`` (or ``raw``, a copy taken
    before a constraint masked the row), with ``top`` alternatives."""
    if raw is not None:
        logits = raw.astype(np.float64)
    else:
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
