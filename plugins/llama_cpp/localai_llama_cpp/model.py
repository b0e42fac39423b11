"""A GGUF model on llama-cpp-python. Imported in the worker only; ``llama_cpp`` is imported in ``load``."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from localai.config import require_model_file
from localai.types import EmbeddingResult, GenerateRequest, GenerationChunk, ModelInfo

from localai_llama_cpp.vision import prompt_usage

log = logging.getLogger("localai_llama_cpp")

DEFAULT_CONTEXT = 4096


def llama_kwargs(config: Any, model_path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Map the LocalAI config onto ``llama_cpp.Llama`` arguments (cache types, flash attention, RPC, fitting)."""
    from localai_llama_cpp.params import llama_kwargs as build

    return build(config, model_path, options)


class LlamaCppModel:
    """One loaded GGUF. Generation goes through a :class:`Scheduler` (``parallel`` slots, continuous batching)."""

    def __init__(self, llm: Any, config: Any, options: dict[str, Any], backend: str) -> None:
        self.llm = llm
        self.config = config
        self.options = options
        self.backend = backend
        self.lock = threading.Lock()  # embeddings on ``llm``'s own context
        self._scheduler: Any = None
        self._scheduler_lock = threading.Lock()
        self._vocab: Any = None  # the constraint engine's tokenizer description (constraint.VocabTokenizer)
        self._pieces: dict[int, bytes] = {}
        self._eog_memo: dict[int, bool] = {}
        self.projector: Any = None  # localai_llama_cpp.vision.Projector when the YAML names an ``mmproj``

    @classmethod
    def load(cls, config: Any, model_path: str | None, options: dict[str, Any], backend: str) -> LlamaCppModel:
        model_path = require_model_file(config, model_path)
        import llama_cpp

        kwargs = llama_kwargs(config, model_path, options)
        log.info("loading %s (n_ctx=%s, threads=%s)", model_path, kwargs["n_ctx"], kwargs["n_threads"])
        from localai_llama_cpp.scheduler import batch_invariant_weights

        if options.get("batch_invariant", True) and not config.embeddings:
            # ggml-cpu multiplies K-quant weights by 8+ rows with a tiled kernel that rounds unlike its row-by-row
            # one: a prompt finished from a cached start (or a decode batched with 8 others) would round otherwise.
            # Read once, at the first matrix product of this worker process.
            os.environ["GGML_CPU_TILED_MM"] = "0"
        # Repacked layouts make greedy output depend on the prompt cache and batch shapes: off unless asked for.
        with batch_invariant_weights(not options.get("repack", False) and not config.embeddings):
            llm = llama_cpp.Llama(**kwargs)
        model = cls(llm, config, options, backend)
        if config.mmproj and not config.embeddings:
            from localai_llama_cpp.vision import Projector

            try:
                model.projector = Projector(llm, config.mmproj, kwargs["n_threads"], bool(kwargs.get("flash_attn")))
            except BaseException:
                llm.close()
                raise
            log.info("loaded the multimodal projector %s", config.mmproj)
        if not config.embeddings:
            model.scheduler()  # allocate the slots' KV now: a context that does not fit fails the load, not a request
            from localai_llama_cpp.constraint import VocabTokenizer

            model._vocab = VocabTokenizer(llm)  # built on the first constrained request
        return model

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
            vision=self.projector is not None,
            image_placeholder=self.projector.marker if self.projector is not None else None,
            extra={"name": meta.get("general.name"), "file": os.path.basename(self.llm.model_path)},
        )

    # -- tokens -------------------------------------------------------------------------------

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=True)

    def detokenize(self, tokens: list[int]) -> str:
        return self.llm.detokenize(self.check_tokens(tokens)).decode("utf-8", errors="replace")

    def check_tokens(self, tokens: list[int]) -> list[int]:
        """Token ids outside the vocabulary abort llama.cpp (the whole worker): refuse them first."""
        n_vocab = self.llm.n_vocab()
        bad = [t for t in tokens if not 0 <= t < n_vocab]
        if bad:
            raise ValueError(f"token id(s) {bad[:5]} out of range: this model's vocabulary has {n_vocab} tokens (0..{n_vocab - 1})")
        return tokens

    @functools.cached_property
    def _eog(self) -> tuple[int, ...]:
        import llama_cpp

        vocab = self.llm._model.vocab
        return tuple(t for t in range(self.llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t))

    def eog_tokens(self) -> tuple[int, ...]:
        """Every end-of-generation token (EOS, EOT, <end_of_turn>, ...): what ``ignore_eos`` bans."""
        return self._eog

    def is_eog(self, token: int) -> bool:
        """Memoised, like :meth:`piece`: asked once per generated token, and a vocabulary never changes."""
        try:
            return self._eog_memo[token]
        except KeyError:
            import llama_cpp

            answer = self._eog_memo[token] = bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))
            return answer

    # -- generation ---------------------------------------------------------------------------

    def _matcher(self, request: GenerateRequest) -> Any:
        """The shared constraint engine's per-sequence matcher for ``request.constraint`` (or ``None``)."""
        if request.constraint is None:
            return None
        from localai_llama_cpp.constraint import VocabTokenizer, request_matcher

        if self._vocab is None:
            self._vocab = VocabTokenizer(self.llm)
        return request_matcher(self._vocab, request)

    def prompt_tokens(self, request: GenerateRequest) -> tuple[list[int], Any]:
        """The prompt's token list and, with images, its :class:`~localai_llama_cpp.vision.Media` (else ``None``):
        each image stands in the list as a run of its key (see :mod:`localai_llama_cpp.vision`)."""
        if isinstance(request.prompt, list):
            return self.check_tokens(list(request.prompt)), None
        if request.images:
            if self.projector is None:
                raise ValueError(f"model {self.config.name!r} has no mmproj: it cannot take images")
            return self.projector.tokenize(request.prompt or "", request.images, request.add_special)
        return self.tokenize(request.prompt or "", request.add_special), None

    def count_prompt_tokens(self, request: dict[str, Any]) -> int:
        """Tokens the request's prompt takes, each image counted as the embeddings it decodes to."""
        tokens, media = self.prompt_tokens(GenerateRequest.model_validate(request))
        return prompt_usage(tokens, media)

    def piece(self, token: int) -> bytes:
        """The token's bytes, memoised: the scheduler thread asks once per generated token between two decodes,
        where every microsecond is a microsecond of the next token's latency (a C call and a bytes copy otherwise)."""
        try:
            return self._pieces[token]
        except KeyError:
            piece = self._pieces[token] = self.llm.detokenize([token])
            return piece

    def scheduler(self) -> Any:
        """The slots' scheduler, created on first use with ``parallel`` sequences on its own context."""
        with self._scheduler_lock:
            if self._scheduler is None:
                from localai_llama_cpp.scheduler import Scheduler, new_context

                n = max(1, int(self.options.get("parallel") or 1))
                self._scheduler = Scheduler(self, new_context(self.llm, n, own=not self.config.embeddings), n, self.options)
            return self._scheduler

    def generate(self, request: GenerateRequest, cancelled: Callable[[], bool]) -> Iterator[GenerationChunk]:
        """Validate and queue the request (errors raise before any chunk), then stream its chunks."""
        from localai_llama_cpp.sampling import build_sampler, greedy
        from localai_llama_cpp.scheduler import Job, stream

        sched = self.scheduler()
        tokens, media = self.prompt_tokens(request)
        tokens = tokens or [self.llm.token_bos()]
        n_ctx = sched.n_ctx_slot
        if len(tokens) >= n_ctx:
            slots = f" ({sched.n_ctx_total} split over {len(sched.slots)} parallel slots)" if len(sched.slots) > 1 else ""
            raise ValueError(f"the prompt is {len(tokens)} tokens, which does not fit the context size of {n_ctx}{slots}")
        room = n_ctx - len(tokens)
        asked = request.max_tokens if request.max_tokens and request.max_tokens > 0 else None
        max_tokens = asked if asked and sched.context_shift else min(asked or room, room)
        matcher = self._matcher(request)  # compiled (or refused) before anything is queued
        if request.sampling.ignore_eos:
            request = request.model_copy(update={"sampling": request.sampling.banning_eos(self.eog_tokens())})
        picker = greedy(request, self.llm.n_vocab())
        sampler = None if picker is not None else build_sampler(self.llm.n_vocab(), request)
        job = Job(request=request, prompt=tokens, sampler=sampler, cancelled=cancelled, max_tokens=max_tokens,
                  matcher=matcher, greedy=picker, media=media)
        try:
            sched.submit(job)
        except BaseException:
            from localai_llama_cpp.sampling import free_sampler

            free_sampler(sampler)
            raise
        return stream(sched, job)

    # -- embeddings ---------------------------------------------------------------------------

    def embed(self, inputs: list[Any]) -> EmbeddingResult:
        if not self.config.embeddings:
            raise NotImplementedError(f"model {self.config.name!r} was not loaded for embeddings; set embeddings: true in its YAML")
        texts = [x if isinstance(x, str) else self.detokenize(list(x)) for x in inputs]
        vectors, count = [], 0
        with self.lock:
            # One text per call: the context has one sequence (n_seq_max 1), so 0.3.36 decodes them one by one
            # anyway, and older bindings (turboquant's 0.3.22) would pack several into one batch and fail.
            for text in texts:
                vector, n = self.llm.embed(text, normalize=True, return_count=True)
                vectors.append(vector)
                count += int(n)
        return EmbeddingResult(vectors=[[float(x) for x in v] for v in vectors], prompt_tokens=count)

    def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()
        if self._vocab is not None:
            self._vocab.close()  # its background walk reads the vocab that llm.close() frees
        if self.projector is not None:
            self.projector.close()
        try:
            self.llm.close()
        except Exception:  # noqa: BLE001
            pass
