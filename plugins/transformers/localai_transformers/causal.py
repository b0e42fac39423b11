"""A causal LM on transformers: our own decode loop over the model's forward pass and KV cache
(:mod:`localai_transformers.batching`: up to ``parallel`` requests per forward pass), so each token streams as it
is chosen, stop strings/cancellation act within a token, and every request keeps its own sampling settings, seed,
logprobs and constraint. Worker-side only."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

from localai.types import GenerateRequest, GenerationChunk, ModelInfo

from localai_transformers.base import TransformersModel
from localai_transformers.options import CAUSAL
from localai_transformers.source import Source, model_class, restore_gguf_tokenizer

log = logging.getLogger("localai_transformers")

# End-of-turn markers of common chat templates: generation ends there as at EOS (llama.cpp's "end of generation").
TURN_ENDS = ("<end_of_turn>", "<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "</s>")


class TextStream:
    """Incremental detokenization: text is released once the tokens seen so far decode without a broken character."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0  # tokens before this only give context for decoding
        self.read = 0  # tokens before this have been released as text

    def feed(self, token: int) -> str:
        self.ids.append(token)
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        now = decode(self.ids[self.prefix:], skip_special_tokens=True)
        if now.endswith("\ufffd") or len(now) <= len(before):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return now[len(before):]


class CausalLM(TransformersModel):
    kind = CAUSAL
    joinable = True  # its KV cache is transformers' own, so requests can share a batch

    def __init__(self, model: Any, tokenizer: Any, config: Any, options: dict[str, Any], backend: str, device: str,
                 source: Source, chat_template: str | None) -> None:
        super().__init__(tokenizer, config, options, backend, device)
        self.model = model
        self.source = source
        self.chat_template = chat_template
        self.eos = self._eos_ids()
        self.eos_set = set(self.eos)
        from localai_transformers.sampling import model_defaults

        self.shipped = model_defaults(getattr(model, "generation_config", None))
        mc = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.n_vocab = int(getattr(mc, "vocab_size", None) or len(tokenizer))
        self.context = int(config.context_size or getattr(mc, "max_position_embeddings", None) or 4096)
        # transformers 5 renamed the forward's ``past_key_values`` to ``cache``; speak whichever this version has.
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.keep_last = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        from localai_transformers.batching import Batcher

        self.batcher = Batcher(self, int(options.get("parallel", 1)), int(options.get("queue_size", 64)),
                               int(options.get("prefill_chunk_size", 0)))
        if self.batcher.joinable is not False:
            from localai_transformers.head import tune_head

            tuned = tune_head(model, self.batcher.parallel)
            if tuned:
                log.info("model %r: %s", config.name, tuned)

    @classmethod
    def load(cls, kind: str, source: Source, config: Any, options: dict[str, Any], backend: str, device: str,
             dtype: Any, trust: bool, quant: Any) -> CausalLM:
        from transformers import AutoTokenizer

        from localai_transformers import gguf_cache

        cls_ = model_class(kind)
        use_cache = source.gguf_file and quant is None and options.get("gguf_cache", True)
        folder = gguf_cache.entry(source, dtype) if use_cache else None
        model = tokenizer = None
        if folder is not None and gguf_cache.cached(folder):
            try:
                tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust)
                model = cls_.from_pretrained(folder, trust_remote_code=trust, dtype=dtype)
                log.info("model %r: %s read from its cached conversion %s", config.name, source.describe(), folder)
            except Exception as exc:  # noqa: BLE001 - any damage to the cache entry: convert the GGUF again
                gguf_cache.discard(folder, exc)
                model = tokenizer = None
        if model is None:
            kwargs: dict[str, Any] = {"trust_remote_code": trust, **source.kwargs()}
            tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
            load_kwargs = {**kwargs, "dtype": dtype}
            if quant is not None:
                load_kwargs.update(quantization_config=quant, device_map=device)
            model = cls_.from_pretrained(source.path, **load_kwargs)
            if folder is not None and callable(getattr(model, "can_generate", None)) and model.can_generate():
                gguf_cache.store(folder, model, tokenizer, source)
        if not callable(getattr(model, "can_generate", None)) or not model.can_generate():
            raise ValueError(f"type {kind!r} loads a {type(model).__name__}, which cannot generate text; use "
                             f"{CAUSAL}, or set embeddings: true to serve embeddings from it")
        if quant is None:
            model.to(device)
        model.eval()
        restore_gguf_tokenizer(tokenizer, source)
        template = getattr(tokenizer, "chat_template", None)
        return cls(model, tokenizer, config, options, backend, device, source, template)

    def _eos_ids(self) -> list[int]:
        ids: set[int] = set()
        gen = getattr(self.model, "generation_config", None)
        for value in (getattr(gen, "eos_token_id", None), self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(int(v) for v in value)
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[t] for t in TURN_ENDS if t in vocab)
        return sorted(ids)

    def info(self) -> ModelInfo:
        base = super().info()
        mc = self.model.config.get_text_config() if hasattr(self.model.config, "get_text_config") else self.model.config
        return base.model_copy(update={
            # HF's model_type, as llama.cpp names architectures (gemma3_text -> gemma3) so the core's
            # built-in templates and tool parsers by architecture apply
            "architecture": (getattr(self.model.config, "model_type", None) or "").removesuffix("_text") or None,
            "context_size": self.context,
            "chat_template": self.chat_template,
            "embedding_size": getattr(mc, "hidden_size", None),
            "supports_grammar": True,
            "extra": {**base.extra, "source": self.source.describe(),
                      "dtype": str(getattr(self.model, "dtype", "")).removeprefix("torch.")},
        })

    # -- generation ---------------------------------------------------------------------------

    def prompt_ids(self, request: GenerateRequest) -> list[int]:
        if isinstance(request.prompt, list):
            return self.check_tokens(list(request.prompt))
        ids = self.tokenize(request.prompt or "", request.add_special)
        if not ids and self.tokenizer.bos_token_id is not None:
            ids = [self.tokenizer.bos_token_id]
        if not ids:
            raise ValueError("the prompt is empty")
        return ids

    def prompt_inputs(self, request: GenerateRequest) -> tuple[list[int], dict[str, Any]]:
        """The prompt's token ids and any other inputs its first forward pass takes (a vision model's pixels)."""
        return self.prompt_ids(request), {}

    def count_prompt_tokens(self, request: dict[str, Any]) -> int:
        return len(self.prompt_inputs(GenerateRequest.model_validate(request))[0])

    def generate(self, request: GenerateRequest, cancelled: Callable[[], bool]) -> Iterator[GenerationChunk]:
        """Validate everything (errors raise before the request is accepted), queue it, then stream its chunks."""
        from localai_transformers.batching import Sequence
        from localai_transformers.constraints import compile_constraint
        from localai_transformers.sampling import Sampler

        ids, first = self.prompt_inputs(request)
        if len(ids) >= self.context:
            raise ValueError(f"the prompt is {len(ids)} tokens, which does not fit the context size of {self.context}")
        room = self.context - len(ids)
        asked = request.max_tokens if request.max_tokens and request.max_tokens > 0 else None
        limit = min(asked or room, room)
        if request.sampling.ignore_eos:
            request = request.model_copy(update={"sampling": request.sampling.banning_eos(self.eos)})
        sampler = Sampler(request, self.n_vocab, self.tensor_device, self.shipped)
        enforcer = compile_constraint(request.constraint, self.tokenizer, self.n_vocab, self.eos)
        return self.batcher.submit(Sequence(request, ids, limit, sampler, enforcer, cancelled, TextStream(self.tokenizer),
                                            first))

    def _piece(self, token: int) -> str:
        return self.tokenizer.decode([token], skip_special_tokens=False)

    def close(self) -> None:
        batcher = getattr(self, "batcher", None)
        if batcher is not None:
            batcher.close()
        super().close()
