"""A GGUF model on llama-cpp-python. Imported in the worker only; ``llama_cpp`` is imported in ``load``."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

from localai.stopping import StopMatcher, Utf8Stream
from localai.types import EmbeddingResult, GenerateRequest, GenerationChunk, ModelInfo, TokenLogprob, Usage

log = logging.getLogger("localai_llama_cpp")

DEFAULT_CONTEXT = 4096
# llama.cpp's own sampling defaults, used where neither the request nor the YAML sets a value.
DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0,
            "presence_penalty": 0.0, "frequency_penalty": 0.0}


def ggml_type(name: str) -> int:
    import llama_cpp

    const = getattr(llama_cpp, f"GGML_TYPE_{name.upper()}", None)
    if const is None:
        raise ValueError(f"cache type {name!r} is not known to this llama.cpp build")
    return int(const)


def flash_attention(value: Any) -> bool | None:
    if value is None or (isinstance(value, str) and value.lower() == "auto"):
        return None
    if isinstance(value, str):
        return value.lower() in ("on", "true")
    return bool(value)


def llama_kwargs(config: Any, model_path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Map the LocalAI config onto ``llama_cpp.Llama`` arguments."""
    import llama_cpp

    threads = config.threads or os.cpu_count() or 1
    kwargs: dict[str, Any] = {
        "model_path": model_path,
        "n_ctx": config.context_size or DEFAULT_CONTEXT,
        "n_threads": threads,
        "n_threads_batch": threads,
        "n_gpu_layers": config.gpu_layers or 0,
        "use_mmap": True if config.mmap is None else config.mmap,
        "use_mlock": bool(config.mmlock),
        "n_batch": int(options.get("n_batch") or 512),
        "embedding": bool(config.embeddings),
        "verbose": os.environ.get("LOCALAI_ENGINE_VERBOSE", "") in ("1", "true"),
    }
    if config.main_gpu not in (None, ""):
        kwargs["main_gpu"] = int(config.main_gpu)
    if config.embeddings:
        kwargs["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
    if config.parameters.seed is not None:
        kwargs["seed"] = config.parameters.seed
    k = config.cache_type_k or ("f32" if config.f16 is False else None)
    v = config.cache_type_v or ("f32" if config.f16 is False else None)
    if k:
        kwargs["type_k"] = ggml_type(k)
    if v:
        kwargs["type_v"] = ggml_type(v)
    fa = flash_attention(config.flash_attention)
    if v and v.lower() not in ("f16", "f32", "bf16"):
        if fa is False:
            raise ValueError(f"cache_type_v {v} (quantized V cache) needs flash attention; remove flash_attention: off")
        fa = True
    if fa is not None:
        kwargs["flash_attn"] = fa
    return kwargs


class LlamaCppModel:
    """One loaded GGUF. Requests are serialised on one context (``parallel`` batching is separate)."""

    def __init__(self, llm: Any, config: Any, options: dict[str, Any], backend: str) -> None:
        self.llm = llm
        self.config = config
        self.options = options
        self.backend = backend
        self.lock = threading.Lock()

    @classmethod
    def load(cls, config: Any, model_path: str | None, options: dict[str, Any], backend: str) -> LlamaCppModel:
        if not model_path:
            raise ValueError(f"model {config.name!r} has no parameters.model (the GGUF file to load)")
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"model file {model_path} does not exist")
        import llama_cpp

        kwargs = llama_kwargs(config, model_path, options)
        log.info("loading %s (n_ctx=%s, threads=%s)", model_path, kwargs["n_ctx"], kwargs["n_threads"])
        llm = llama_cpp.Llama(**kwargs)
        return cls(llm, config, options, backend)

    # -- metadata -----------------------------------------------------------------------------

    def _token_text(self, token: int) -> str | None:
        if token < 0:
            return None
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace") or None

    def info(self) -> ModelInfo:
        meta = self.llm.metadata or {}
        template = meta.get("tokenizer.chat_template") if self.options.get("use_jinja", True) else None
        return ModelInfo(
            backend=self.backend,
            architecture=meta.get("general.architecture"),
            context_size=self.llm.n_ctx(),
            chat_template=template,
            bos_token=self._token_text(self.llm.token_bos()),
            eos_token=self._token_text(self.llm.token_eos()),
            embedding_size=self.llm.n_embd(),
            supports_grammar=True,
            extra={"name": meta.get("general.name"), "file": os.path.basename(self.llm.model_path)},
        )

    # -- tokens -------------------------------------------------------------------------------

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=True)

    def detokenize(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))

    # -- generation ---------------------------------------------------------------------------

    def _grammar(self, request: GenerateRequest) -> Any:
        c = request.constraint
        if c is None:
            return None
        from llama_cpp.llama_grammar import LlamaGrammar

        try:
            if c.type == "grammar" and c.grammar:
                return LlamaGrammar.from_string(c.grammar, verbose=False)
            if c.type == "json_schema":
                return LlamaGrammar.from_json_schema(json.dumps(c.json_schema or {"type": "object"}), verbose=False)
        except Exception as exc:
            raise ValueError(f"cannot build a grammar from the constraint: {exc}") from exc
        return None

    def _logits_processor(self, request: GenerateRequest) -> Any:
        bias = request.sampling.logit_bias
        if not bias:
            return None
        import numpy as np
        from llama_cpp import LogitsProcessorList

        ids = np.array([int(k) for k in bias], dtype=np.int64)
        vals = np.array([float(v) for v in bias.values()], dtype=np.float32)

        def apply(_input_ids: Any, scores: Any) -> Any:
            scores[ids] += vals
            return scores

        return LogitsProcessorList([apply])

    def prompt_tokens(self, request: GenerateRequest) -> list[int]:
        if isinstance(request.prompt, list):
            return list(request.prompt)
        return self.tokenize(request.prompt or "", request.add_special)

    def _logprobs(self, token: int, top: int) -> TokenLogprob:
        import llama_cpp
        import numpy as np

        n_vocab = self.llm.n_vocab()
        ptr = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float64)
        m = logits.max()
        logz = m + np.log(np.exp(logits - m).sum())
        lp = logits - logz
        text = self.llm.detokenize([token], special=True)
        alts: list[tuple[str, float]] = []
        if top > 0:
            best = np.argpartition(-lp, top)[:top]
            best = best[np.argsort(-lp[best])]
            alts = [(self.llm.detokenize([int(t)], special=True).decode("utf-8", "replace"), float(lp[t])) for t in best]
        return TokenLogprob(token=text.decode("utf-8", "replace"), logprob=float(lp[token]), bytes=list(text), top=alts)

    def generate(self, request: GenerateRequest, cancelled: Callable[[], bool]) -> Iterator[GenerationChunk]:
        with self.lock:
            yield from self._generate(request, cancelled)

    def _generate(self, request: GenerateRequest, cancelled: Callable[[], bool]) -> Iterator[GenerationChunk]:
        llm = self.llm
        tokens = self.prompt_tokens(request)
        n_ctx = llm.n_ctx()
        if not tokens:
            tokens = [llm.token_bos()]
        if len(tokens) >= n_ctx:
            raise ValueError(f"the prompt is {len(tokens)} tokens, which does not fit the context size of {n_ctx}")
        room = n_ctx - len(tokens)
        max_tokens = request.max_tokens if request.max_tokens and request.max_tokens > 0 else room
        max_tokens = min(max_tokens, room)
        s = request.sampling
        pick = lambda name: getattr(s, name) if getattr(s, name) is not None else DEFAULTS[name]  # noqa: E731
        llm.set_seed(s.seed if s.seed is not None else random.randint(0, 2**31 - 1))
        cached = 0
        for a, b in zip(llm._input_ids[: llm.n_tokens], tokens):
            if a != b:
                break
            cached += 1
        grammar = self._grammar(request)
        usage = Usage(prompt_tokens=len(tokens), cached_tokens=min(cached, len(tokens) - 1) if cached else 0)
        stops = StopMatcher(request.stop)
        utf8 = Utf8Stream()
        generated = 0
        pending_tokens = 0
        pending_logprobs: list[TokenLogprob] = []
        finish: str | None = None
        stop_sequence: str | None = None
        iterator = llm.generate(
            tokens,
            temp=pick("temperature"),
            top_k=pick("top_k"),  # <= 0 disables top-k in llama.cpp
            top_p=pick("top_p"),
            min_p=pick("min_p"),
            repeat_penalty=pick("repeat_penalty"),
            frequency_penalty=pick("frequency_penalty"),
            presence_penalty=pick("presence_penalty"),
            logits_processor=self._logits_processor(request),
            grammar=grammar,
            reset=True,
        )
        try:
            for token in iterator:
                if cancelled():
                    finish = "cancelled"
                    break
                if self.is_eog(token):
                    finish = "stop"
                    break
                generated += 1
                pending_tokens += 1
                if request.logprobs is not None:
                    pending_logprobs.append(self._logprobs(token, request.logprobs))
                piece = utf8.feed(llm.detokenize([token], prev_tokens=None))
                text, matched = stops.feed(piece)
                if matched is not None:
                    finish, stop_sequence = "stop", matched
                if text or matched is not None:
                    yield GenerationChunk(text=text, tokens=pending_tokens, logprobs=pending_logprobs or None)
                    pending_tokens, pending_logprobs = 0, []
                if finish:
                    break
                if generated >= max_tokens:
                    finish = "length"
                    break
        finally:
            iterator.close()
        if finish != "stop" or stop_sequence is None:
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
        texts = [x if isinstance(x, str) else self.detokenize(list(x)) for x in inputs]
        with self.lock:
            vectors, count = self.llm.embed(texts, normalize=True, return_count=True)
        if texts and vectors and not isinstance(vectors[0], list):
            vectors = [vectors]
        return EmbeddingResult(vectors=[[float(x) for x in v] for v in vectors], prompt_tokens=int(count))

    def close(self) -> None:
        try:
            self.llm.close()
        except Exception:  # noqa: BLE001
            pass
