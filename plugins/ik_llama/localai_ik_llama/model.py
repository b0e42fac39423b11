"""A GGUF model on ik_llama.cpp, driven token by token through its C API. Worker processes only.

The wheel's ``IkLlama`` class returns whole generations with a hard-wired Gemma template, so we
use its ctypes structs and library directly: our own context (cache types, flash attention,
threads, batch sizes), a prefix-reusing KV cache, C-side sampling, and streamed text.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from ik_llama_cpp import _ctypes_api as C
from localai.config import require_model_file
from localai.stopping import StopMatcher, Utf8Stream
from localai.types import EmbeddingResult, GenerateRequest, GenerationChunk, ModelInfo, TokenLogprob, Usage

from localai_ik_llama import capi
from localai_ik_llama.cpu import has_vnni
from localai_ik_llama.grammar import constraint_matcher, converter_available, vocab_tokenizer
from localai_ik_llama.options import CACHE_TYPES, CHUNK, cache_k, plan_kv
from localai_ik_llama.sampling import Sampler, settings

log = logging.getLogger("localai_ik_llama")

DEFAULT_CONTEXT = 4096


def chunks(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` in as few batches of at most ``size`` as possible, split evenly."""
    count = -(-(end - start) // size)
    bounds = [start + (end - start) * i // count for i in range(count + 1)] if count else [start]
    return list(zip(bounds, bounds[1:]))


def fixed_chunks(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut at the multiples of ``size``: the same batches for a position whatever came before."""
    bounds = [start, *range((start // size + 1) * size, end, size), end] if end > start else [start]
    return list(zip(bounds, bounds[1:]))


def context_params(config: Any, options: dict[str, Any]) -> Any:
    threads = config.threads or os.cpu_count() or 1
    n_ctx = config.context_size or DEFAULT_CONTEXT
    params = C.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_seq_max = 1
    params.n_threads = threads
    params.n_threads_batch = threads
    if config.embeddings:
        # a pooled embedding needs the whole input in one micro-batch
        params.n_batch = params.n_ubatch = n_ctx
        params.embeddings = True
        params.pooling_type = C.LLAMA_POOLING_TYPE_MEAN
    else:
        params.n_batch = min(int(options.get("n_batch") or 512), n_ctx)
        params.n_ubatch = min(int(options.get("n_ubatch") or params.n_batch), params.n_batch)
    if config.parameters.seed is not None:
        params.seed = config.parameters.seed & 0xFFFFFFFF
    k, v, fa = plan_kv(cache_k(config), config.cache_type_v, config.flash_attention, has_vnni(), bool(config.embeddings))
    params.type_k, params.type_v, params.flash_attn = CACHE_TYPES[k], CACHE_TYPES[v], fa
    return params


class IkLlamaModel:
    """One loaded GGUF with one context; requests are serialised on it."""

    def __init__(self, model: int, ctx: int, config: Any, options: dict[str, Any], backend: str, path: str,
                 flash_attn: bool) -> None:
        self.model = model
        self.ctx = ctx
        self.config = config
        self.options = options
        self.backend = backend
        self.path = path
        self.flash_attn = flash_attn
        self.lock = threading.Lock()
        self.n_ctx = int(capi.n_ctx(ctx))
        self.n_vocab = int(capi.n_vocab(model))
        self.n_batch = int(capi.n_batch(ctx))
        self.n_chunk = int(capi.n_ubatch(ctx))  # rows per micro-batch: a prompt batch is split no further
        self.batch = C.llama_batch_init(self.n_batch, 0, 1)
        self.sampler = Sampler(ctx, self.n_vocab)
        self.cached: list[int] = []  # tokens whose keys/values sit in the KV cache (sequence 0)
        self.reuse = bool(options.get("prompt_cache", True))
        self.invariant = bool(options.get("batch_invariant", True)) and not config.embeddings
        # how many leading cached tokens were evaluated as a prompt, in the fixed chunks: only these are reused when
        # invariant (generated tokens, decoded one at a time, round otherwise), and only up to a chunk boundary
        self.evaluated = 0
        self._vocab: Any = None  # the constraint engine's tokenizer description, built on first use

    @classmethod
    def load(cls, config: Any, model_path: str | None, options: dict[str, Any], backend: str) -> IkLlamaModel:
        model_path = require_model_file(config, model_path)
        if config.mmproj:
            raise ValueError(f"model {config.name!r}: the ik_llama.cpp wheel binds no multimodal library (clip/mtmd), so "
                             "mmproj (images) is not supported on ik-llama-cpp; use backend: llama-cpp for vision")
        capi.init_backend()
        mparams = C.llama_model_default_params()
        mparams.use_mmap = True if config.mmap is None else bool(config.mmap)
        mparams.use_mlock = bool(config.mmlock)
        mparams.n_gpu_layers = config.gpu_layers or 0
        cparams = context_params(config, options)
        log.info("loading %s (n_ctx=%s, threads=%s, flash_attn=%s)", model_path, cparams.n_ctx, cparams.n_threads,
                 cparams.flash_attn)
        model = C.llama_model_load_from_file(model_path.encode("utf-8"), mparams)
        if not model:
            raise RuntimeError(f"ik_llama.cpp could not load {model_path} (not a GGUF, or an architecture this build lacks)")
        ctx = C.llama_init_from_model(model, cparams)
        if not ctx:
            C.llama_free_model(model)
            raise RuntimeError(f"ik_llama.cpp could not create a context for {model_path} "
                               f"(n_ctx={cparams.n_ctx}, cache types {config.cache_type_k or 'f16'}/{config.cache_type_v or 'f16'})")
        return cls(model, ctx, config, options, backend, model_path, bool(cparams.flash_attn))

    # -- metadata -----------------------------------------------------------------------------

    def _special_text(self, token: int) -> str | None:
        if token < 0:
            return None
        return capi.piece(self.model, token, special=True).decode("utf-8", "replace") or None

    def info(self) -> ModelInfo:
        template = None
        if self.options.get("use_jinja", True):
            raw = capi.model_chat_template(self.model, None)
            template = raw.decode("utf-8", "replace") if raw else capi.meta(self.model, "tokenizer.chat_template")
        return ModelInfo(
            backend=self.backend,
            architecture=capi.meta(self.model, "general.architecture"),
            context_size=self.n_ctx,
            chat_template=template,
            bos_token=self._special_text(capi.token_bos(self.model)),
            eos_token=self._special_text(capi.token_eos(self.model)),
            embedding_size=int(capi.n_embd(self.model)),
            supports_grammar=converter_available(),
            extra={"name": capi.meta(self.model, "general.name"), "file": os.path.basename(self.path),
                   "flash_attention": self.flash_attn, "cache_type_k": cache_k(self.config) or "f16",
                   "cache_type_v": self.config.cache_type_v or "f16"},
        )

    # -- tokens -------------------------------------------------------------------------------

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return capi.tokens_of(self.model, text, add_special)

    def _check_ids(self, tokens: list[int]) -> None:
        bad = [t for t in tokens if not 0 <= t < self.n_vocab]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside this model's vocabulary (0..{self.n_vocab - 1})")

    def detokenize(self, tokens: list[int]) -> str:
        self._check_ids(tokens)
        return b"".join(capi.piece(self.model, t) for t in tokens).decode("utf-8", "replace")

    def prompt_tokens(self, request: GenerateRequest) -> list[int]:
        if isinstance(request.prompt, list):
            tokens = list(request.prompt)
            self._check_ids(tokens)
            return tokens
        return self.tokenize(request.prompt or "", request.add_special)

    # -- decoding -----------------------------------------------------------------------------

    def _decode(self, tokens: list[int], pos: int, all_outputs: bool = False) -> None:
        """Evaluate ``tokens`` at positions ``pos...`` in one batch (logits for the last one)."""
        b = self.batch
        n = len(tokens)
        b.n_tokens = n
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = pos + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if all_outputs or i == n - 1 else 0
        ret = capi.decode(self.ctx, b)
        if ret != 0:
            raise RuntimeError(f"ik_llama.cpp llama_decode failed ({ret}) at position {pos} with {n} tokens")

    def _eval(self, tokens: list[int]) -> None:
        """Append a prompt's ``tokens`` to the cached sequence: when invariant in the fixed chunks (a cold prompt and
        one finished from a cached prefix get every row from the same batch), else in even batches of at most one
        micro-batch."""
        start = len(self.cached)
        end = start + len(tokens)
        for a, b in fixed_chunks(start, end, CHUNK) if self.invariant else chunks(start, end, self.n_chunk):
            self._decode(tokens[a - start: b - start], a)
            self.cached.extend(tokens[a - start: b - start])
        self.evaluated = len(self.cached)

    def _step(self, token: int) -> None:
        """Decode one generated token (a batch of one row: never reused as a prompt's when invariant)."""
        self._decode([token], len(self.cached))
        self.cached.append(token)

    def _reuse(self, tokens: list[int]) -> int:
        """Keep the cached prefix ``tokens`` shares (at least one token is always re-evaluated for logits). When
        invariant, only whole fixed chunks of a prefix that was itself evaluated as a prompt: the rest is then
        evaluated in the batches it would have been cold."""
        common = 0
        if self.reuse:
            for a, b in zip(self.cached, tokens):
                if a != b:
                    break
                common += 1
        common = min(common, len(tokens) - 1)
        if self.invariant:
            common = min(common, self.evaluated) // CHUNK * CHUNK
        if not capi.kv_cache_seq_rm(self.ctx, 0, common, -1):
            capi.kv_cache_clear(self.ctx)
            common = 0
        del self.cached[common:]
        self.evaluated = min(self.evaluated, common)
        return common

    def _reset(self) -> None:
        capi.kv_cache_clear(self.ctx)
        self.cached = []
        self.evaluated = 0

    # -- generation ---------------------------------------------------------------------------

    def generate(self, request: GenerateRequest, cancelled: Callable[[], bool]) -> Iterator[GenerationChunk]:
        if self.config.embeddings:
            raise NotImplementedError(f"model {self.config.name!r} was loaded for embeddings; "
                                      "use a config without embeddings: true for text generation")
        with self.lock:
            # compiled before any decoding, so a refused schema or grammar is a clear error
            matcher = constraint_matcher(self._tokenizer(), request.constraint) if request.constraint is not None else None
            yield from self._generate(request, cancelled, matcher)

    def _tokenizer(self) -> Any:
        if self._vocab is None:
            self._vocab = vocab_tokenizer(self.model)
        return self._vocab

    def _logprob(self, token: int, top: int) -> TokenLogprob:
        lp = self.sampler.logprobs()
        raw = capi.piece(self.model, token, special=True)
        alts: list[tuple[str, float]] = []
        if top > 0:
            best = np.argpartition(-lp, top)[:top]
            best = best[np.argsort(-lp[best])]
            alts = [(capi.piece(self.model, int(t), special=True).decode("utf-8", "replace"), float(lp[t])) for t in best]
        return TokenLogprob(token=raw.decode("utf-8", "replace"), logprob=float(lp[token]), bytes=list(raw), top=alts)

    def eog_tokens(self) -> tuple[int, ...]:
        """Every end-of-generation token: what ``ignore_eos`` bans (computed once)."""
        if getattr(self, "_eog", None) is None:
            self._eog = tuple(t for t in range(self.n_vocab) if capi.token_is_eog(self.model, t))
        return self._eog

    def _generate(self, request: GenerateRequest, cancelled: Callable[[], bool],
                  matcher: Any = None) -> Iterator[GenerationChunk]:
        tokens = self.prompt_tokens(request)
        if not tokens:
            tokens = [int(capi.token_bos(self.model))]
        if len(tokens) >= self.n_ctx:
            raise ValueError(f"the prompt is {len(tokens)} tokens, which does not fit the context size of {self.n_ctx}")
        room = self.n_ctx - len(tokens)
        max_tokens = min(request.max_tokens if request.max_tokens and request.max_tokens > 0 else room, room)
        s = settings(request.sampling.banning_eos(self.eog_tokens()) if request.sampling.ignore_eos else request.sampling)
        seed = request.sampling.seed
        self.sampler.seed(seed if seed is not None else random.randint(0, 2**31 - 1))
        last_n = int(self.options.get("repeat_last_n", 64))
        try:
            reused = self._reuse(tokens)
            self._eval(tokens[reused:])
        except Exception:
            self._reset()
            raise
        usage = Usage(prompt_tokens=len(tokens), cached_tokens=reused)
        stops = StopMatcher(request.stop)
        utf8 = Utf8Stream()
        generated = pending_tokens = 0
        pending_logprobs: list[TokenLogprob] = []
        finish: str | None = None
        stop_sequence: str | None = None
        while True:
            if cancelled():
                finish = "cancelled"
                break
            token = self.sampler.sample(s, self.cached[-last_n:] if last_n > 0 else [], matcher)
            if capi.token_is_eog(self.model, token):
                finish = "stop"  # with a constraint, only sampled once the output is complete
                break
            if matcher is not None:
                matcher.consume(token)
            generated += 1
            pending_tokens += 1
            if request.logprobs is not None:
                pending_logprobs.append(self._logprob(token, request.logprobs))
            text, matched = stops.feed(utf8.feed(capi.piece(self.model, token)))
            if matched is not None:
                finish, stop_sequence = "stop", matched
            if text or matched is not None:
                yield GenerationChunk(text=text, tokens=pending_tokens, logprobs=pending_logprobs or None)
                pending_tokens, pending_logprobs = 0, []
            if not finish and matcher is not None and matcher.done:
                finish = "stop"  # the constrained output is complete: only the end could follow
            if finish:
                break
            if generated >= max_tokens:
                finish = "length"
                break
            try:
                self._step(token)
            except Exception:
                self._reset()
                raise
        if stop_sequence is None:
            tail, _ = stops.feed(utf8.flush())
            tail += stops.flush()
            if tail and finish != "cancelled":
                yield GenerationChunk(text=tail, tokens=pending_tokens, logprobs=pending_logprobs or None)
                pending_tokens = 0
        usage.completion_tokens = generated
        yield GenerationChunk(tokens=pending_tokens, finish_reason=finish or "stop", stop_sequence=stop_sequence, usage=usage)

    # -- embeddings ---------------------------------------------------------------------------

    def embed(self, inputs: list[Any]) -> EmbeddingResult:
        if not self.config.embeddings:
            raise NotImplementedError(f"model {self.config.name!r} was not loaded for embeddings; set embeddings: true in its YAML")
        n_embd = int(capi.n_embd(self.model))
        vectors: list[list[float]] = []
        count = 0
        with self.lock:
            for item in inputs:
                tokens = self.tokenize(item, True) if isinstance(item, str) else list(item)
                self._check_ids(tokens)
                if not tokens:
                    raise ValueError("an embedding input is empty")
                if len(tokens) > self.n_ctx:
                    raise ValueError(f"an embedding input is {len(tokens)} tokens, more than the context size of {self.n_ctx}")
                self._reset()
                self._decode(tokens, 0, all_outputs=True)
                ptr = capi.get_embeddings_seq(self.ctx, 0)
                if not ptr:
                    raise RuntimeError("ik_llama.cpp returned no pooled embedding")
                vec = np.ctypeslib.as_array(ptr, shape=(n_embd,)).astype(np.float64)
                norm = float(np.linalg.norm(vec))
                vectors.append((vec / norm if norm > 0 else vec).tolist())
                count += len(tokens)
            self._reset()
        return EmbeddingResult(vectors=vectors, prompt_tokens=count)

    def close(self) -> None:
        if self.ctx:
            C.llama_batch_free(self.batch)
            C.llama_free(self.ctx)
            self.ctx = None  # type: ignore[assignment]
        if self.model:
            C.llama_free_model(self.model)
            self.model = None  # type: ignore[assignment]
