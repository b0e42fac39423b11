"""One vLLM ``AsyncLLM`` per model, driven from an asyncio loop on its own thread.

The worker runs each request on its own thread; every request goes straight into the one engine, so vLLM's
continuous batching and prefix caching schedule them together. Requests are added eagerly (a schema vLLM cannot
enforce, or a prompt over the context, fails before the worker accepts the request, so it keeps its 400), then
streamed as deltas; a cancelled request is aborted in the engine at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import logging
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from localai.types import EmbeddingResult, GenerateRequest, GenerationChunk, ModelInfo, TokenLogprob, Usage

from localai_vllm.options import check_names

log = logging.getLogger("localai_vllm")

POLL = 0.05  # seconds between cancellation checks while a request waits for its next output
IMAGES_PER_PROMPT = 4  # vLLM's limit_mm_per_prompt for images unless engine_args set one (it profiles memory for this many)


def _available_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 4.0


def _cpu_kv_cache(requested: int | None) -> None:
    """vLLM's CPU build reserves ``VLLM_CPU_KVCACHE_SPACE`` GiB up front: default to what fits, and say so."""
    if os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        log.info("KV cache: %s GiB of RAM (VLLM_CPU_KVCACHE_SPACE from the environment)", os.environ["VLLM_CPU_KVCACHE_SPACE"])
        return
    free = _available_gib()
    gib = requested or max(1, min(4, int(free / 4)))
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(gib)
    log.info("KV cache: %d GiB of RAM (%s; %.1f GiB available)", gib, "option kv_cache_space" if requested else
             "a quarter of the available RAM, at most 4; set options: [kv_cache_space:N] to change", free)


def cpu_dtype(cpuinfo: str | None = None) -> str:
    """bfloat16 where the CPU computes it natively (AVX512-BF16, AMX), else float32.

    vLLM's own ``auto`` turns a float32 checkpoint into bfloat16 on every CPU; without native support that is
    emulated: on an AVX2-only EPYC, Gemma 3 270M offline did 13.2 tok/s for 8 prompts in bf16 against 28.3 in
    float32 (one prompt: 8.8 against 5.2, where halving the memory traffic wins), and it is less exact.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    flags = set(cpuinfo.split())
    native = bool(flags & {"avx512_bf16", "amx_bf16"})
    log.info("dtype %s on this CPU (%s); set dtype: in the YAML to choose", "bfloat16" if native else "float32",
             "native bf16" if native else "no native bf16")
    return "bfloat16" if native else "float32"


def structured_output(c: Any) -> dict[str, Any]:
    """A constraint as vLLM structured-output arguments, in the core's exact language.

    The engine runs vLLM's ``guidance`` backend (llguidance, the core's constraint engine) by default, and a
    JSON schema goes in prepared as the core compiles it for every other backend (objects closed, ``oneOf`` of
    ``required`` lists rewritten, the request's string-length and items limits, ...) with the core's llguidance
    options (its whitespace) under ``x-guidance``. The digit and depth limits are a mask the core's matcher adds,
    which vLLM's engine does not run: on vLLM numbers and nesting are bounded only by the schema. The server refused what cannot be
    enforced before this point.
    """
    from localai.constraints import limits
    from localai.constraints.compiler import prepared_schema

    if c.type == "json_schema":
        schema = c.json_schema if c.json_schema is not None else {"type": "object"}
        prepared = prepared_schema(schema, True, c.limits)
        if not isinstance(prepared, dict):
            prepared = {}
        return {"json": {**prepared, "x-guidance": limits.json_options(c.limits)}}
    if c.type == "grammar" and c.grammar:
        return {"grammar": c.grammar}
    if c.type == "regex" and getattr(c, "regex", None):
        return {"regex": c.regex}
    raise NotImplementedError(f"vLLM cannot enforce a {c.type} constraint without its body")


def _vision_args(args: dict[str, Any], folder: str) -> None:
    """Defaults for a multimodal HF folder: ``limit_mm_per_prompt`` of ``IMAGES_PER_PROMPT`` images, and vLLM's
    Transformers modeling backend (``model_impl: transformers``) where vLLM's own class for the architecture cannot
    be imported. On CPU builds that is the usual case: vLLM's Gemma 3, LLaVA, Qwen-VL, ... modules import
    transformers' torchvision image processors, and vLLM's CPU torch has no torchvision beside it; the Transformers
    backend runs the model's HF code with vLLM's attention and its HF processor (the PIL one without torchvision)."""
    try:
        architectures = json.loads((Path(folder) / "config.json").read_text()).get("architectures") or []
        from vllm.model_executor.models.registry import _MULTIMODAL_MODELS
    except (OSError, ValueError, ImportError):
        return
    known = [a for a in architectures if a in _MULTIMODAL_MODELS]
    if not known:
        return
    args.setdefault("limit_mm_per_prompt", {"image": IMAGES_PER_PROMPT})
    if "model_impl" in args:
        return
    module = _MULTIMODAL_MODELS[known[0]][0]
    try:
        importlib.import_module(f"vllm.model_executor.models.{module}")
    except ImportError as exc:
        args["model_impl"] = "transformers"
        log.warning("vLLM's %s class cannot be imported here (%s): serving it with vLLM's Transformers modeling "
                    "backend (model_impl: transformers; set engine_args.model_impl to choose)", known[0], exc)


class VLLMModel:
    def __init__(self, engine: Any, loop: asyncio.AbstractEventLoop, thread: threading.Thread, config: Any,
                 args: dict[str, Any]) -> None:
        self.engine = engine
        self.loop = loop
        self.thread = thread
        self.config = config
        self.args = args
        self.tokenizer = engine.get_tokenizer()
        self.max_model_len = int(engine.model_config.max_model_len)
        self.pooling = bool(config.embeddings)
        self.placeholder, self.max_images = self._vision()

    # -- loading ---------------------------------------------------------------------------------------

    @classmethod
    def load(cls, config: Any, model_path: str | None, options: dict[str, Any]) -> VLLMModel:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform

        args = dict(options.get("engine_args") or {})
        check_names(args, {f.name for f in dataclasses.fields(AsyncEngineArgs)})
        if isinstance(args.get("structured_outputs_config"), dict):  # YAML maps; EngineArgs wants the config object
            from vllm.config import StructuredOutputsConfig

            args["structured_outputs_config"] = StructuredOutputsConfig(**args["structured_outputs_config"])
        name = config.parameters.model
        if not name:
            raise ValueError("parameters.model must name an HF model folder in the models folder, or a hub id")
        local = model_path is not None and Path(model_path).exists()
        if local and not Path(model_path).is_dir():  # type: ignore[arg-type]
            raise ValueError(f"{name!r} is a file: vLLM serves HF model folders (config.json + weights); "
                             "for a GGUF use backend: llama-cpp")
        if not local:
            # A hub id: the real download path, cached under the models folder as LocalAI does.
            if model_path is not None:
                os.environ.setdefault("HF_HOME", str(Path(model_path).parents[len(Path(name).parts) - 1] / ".hf"))
        if current_platform.is_cpu():
            _cpu_kv_cache(options.get("kv_cache_space"))
            if "dtype" not in args:
                args["dtype"] = cpu_dtype()
        if config.embeddings:
            args.setdefault("runner", "pooling")
        elif local:
            _vision_args(args, model_path)  # type: ignore[arg-type]
        args["model"] = model_path if local else name
        log.info("starting vLLM engine for %s with %s", args["model"], {k: v for k, v in args.items() if k != "model"})
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="vllm-loop", daemon=True)
        thread.start()

        async def make() -> Any:
            from vllm.v1.engine.async_llm import AsyncLLM

            return AsyncLLM.from_engine_args(AsyncEngineArgs(**args))

        try:
            engine = asyncio.run_coroutine_threadsafe(make(), loop).result()
        except Exception as exc:
            loop.call_soon_threadsafe(loop.stop)
            if not local:
                raise RuntimeError(f"model {name!r} is not in the models folder and could not be loaded from the hub "
                                   f"(offline, or no such model): {exc}") from exc
            raise
        return cls(engine, loop, thread, config, args)

    def _vision(self) -> tuple[str | None, int | None]:
        """The text that stands for an image in a prompt (the HF processor's: Gemma 3's ``<start_of_image>``, which
        it expands into the image's tokens, LLaVA's ``<image>``, ...) and vLLM's image limit per prompt, for a
        model that takes images; (None, None) for one that does not."""
        mm = getattr(self.engine.model_config, "multimodal_config", None)
        processor = getattr(getattr(self.engine, "renderer", None), "mm_processor", None)
        if self.pooling or mm is None or processor is None:
            return None, None
        try:
            if "image" not in processor.info.get_supported_mm_limits():
                return None, None
            limit = int(mm.get_limit_per_prompt("image"))
            hf = processor.info.get_hf_processor()
        except Exception as exc:  # noqa: BLE001 - a model whose processor vLLM cannot describe serves text only
            log.warning("serving %s without images: %s", self.config.name, exc)
            return None, None
        placeholder = getattr(hf, "boi_token", None) or getattr(hf, "image_token", None)
        if not placeholder or limit <= 0:
            return None, None
        return placeholder, limit

    def _run(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def info(self) -> ModelInfo:
        tok = self.tokenizer
        hf_config = self.engine.model_config.hf_config
        return ModelInfo(
            backend="vllm", architecture=getattr(hf_config, "model_type", None), context_size=self.max_model_len,
            chat_template=getattr(tok, "chat_template", None), bos_token=getattr(tok, "bos_token", None),
            eos_token=getattr(tok, "eos_token", None), supports_grammar=not self.pooling,
            embedding_size=getattr(hf_config, "hidden_size", None) if self.pooling else None,
            vision=self.placeholder is not None, image_placeholder=self.placeholder, max_images=self.max_images,
            extra={"engine_args": {k: v for k, v in self.args.items() if isinstance(v, (str, int, float, bool))}},
        )

    # -- text ------------------------------------------------------------------------------------------

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=add_special))

    def detokenize(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens)

    def _sampling(self, request: GenerateRequest, prompt_len: int) -> Any:
        from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

        s = request.sampling
        structured = None
        c = request.constraint
        if c is not None:
            structured = StructuredOutputsParams(**structured_output(c))
        kw: dict[str, Any] = {
            # A non-streamed request takes its output once, at the end, as vLLM's own server does.
            "n": 1, "output_kind": RequestOutputKind.DELTA if request.incremental else RequestOutputKind.FINAL_ONLY,
            "stop": list(request.stop) or None,
            "max_tokens": request.max_tokens if request.max_tokens else self.max_model_len - prompt_len,
            "seed": s.seed, "logit_bias": dict(s.logit_bias) if s.logit_bias else None,
            "logprobs": request.logprobs, "structured_outputs": structured, "ignore_eos": s.ignore_eos,
        }
        for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"), ("min_p", "min_p"),
                             ("presence_penalty", "presence_penalty"), ("frequency_penalty", "frequency_penalty"),
                             ("repeat_penalty", "repetition_penalty")):
            value = getattr(s, ours)
            if value is not None:
                kw[theirs] = value
        return SamplingParams(**kw)

    def _prompt(self, request: GenerateRequest) -> tuple[Any, int]:
        """What goes to ``add_request`` and its length in tokens. With images, vLLM's renderer runs the model's
        processor on the prompt's ids and the images: each placeholder becomes the image's tokens, so the length
        is the expanded prompt's (what the engine computes over and usage counts)."""
        prompt = request.prompt
        ids = list(prompt) if isinstance(prompt, list) else self.tokenize(prompt or "", request.add_special)
        vocab = len(self.tokenizer)
        if any(not 0 <= t < vocab for t in ids):
            raise ValueError(f"prompt token ids must be in 0..{vocab - 1}")
        if not request.images:
            engine_input: Any = {"prompt_token_ids": ids}
        else:
            if self.placeholder is None:
                raise ValueError(f"model {self.config.name!r} does not take images")
            if isinstance(prompt, list):
                raise ValueError("a prompt of token ids cannot carry images")
            if self.max_images is not None and len(request.images) > self.max_images:
                raise ValueError(f"{len(request.images)} images; this model takes at most {self.max_images} per request "
                                 "(engine_args.limit_mm_per_prompt)")
            parsed = {"prompt_token_ids": ids, "multi_modal_data": {"image": [i.rgb() for i in request.images]}}
            (engine_input,) = self._run(self.engine.renderer.render_cmpl_async([parsed]))
            ids = engine_input["prompt_token_ids"]
        if len(ids) >= self.max_model_len:
            raise ValueError(f"the prompt is {len(ids)} tokens; this model's context (max_model_len) is {self.max_model_len}")
        return engine_input, len(ids)

    def count_prompt_tokens(self, request: dict[str, Any]) -> int:
        """The prompt's tokens, each image counted as the tokens it expands to."""
        return self._prompt(GenerateRequest.model_validate(request))[1]

    def generate(self, request: GenerateRequest, cancelled: Callable[[], bool]) -> Iterator[GenerationChunk]:
        if self.pooling:
            raise NotImplementedError("this model is loaded for embeddings (embeddings: true); it does not generate")
        engine_input, prompt_len = self._prompt(request)
        params = self._sampling(request, prompt_len)
        rid = uuid.uuid4().hex
        # Added now: vLLM validates the request (structured output, lengths) here, before the worker accepts it.
        collector = self._run(self.engine.add_request(rid, engine_input, params))
        return self._stream(rid, collector, prompt_len, request.logprobs, cancelled)

    def _stream(self, rid: str, collector: Any, prompt_len: int, top: int | None,
                cancelled: Callable[[], bool]) -> Iterator[GenerationChunk]:
        """The request's outputs as chunks. A coroutine on the engine's loop moves each output into a plain queue
        (no cross-thread future per token); outputs that arrived together are sent as one chunk."""
        outputs: queue.SimpleQueue[Any] = queue.SimpleQueue()

        async def pump() -> None:
            try:
                while True:
                    out = await collector.get()
                    outputs.put(out)
                    if out.finished:
                        return
            except BaseException as exc:  # noqa: BLE001 - the engine's error goes to the consumer
                outputs.put(exc)

        pumping = asyncio.run_coroutine_threadsafe(pump(), self.loop)
        done = False
        completion = cached = 0
        try:
            while not done:
                try:
                    batch = [outputs.get(timeout=POLL)]
                except queue.Empty:
                    if cancelled():
                        break
                    continue
                while True:  # whatever else is already there joins this chunk
                    try:
                        batch.append(outputs.get_nowait())
                    except queue.Empty:
                        break
                text, tokens, logprobs = [], 0, [] if top is not None else None
                finish = stop = None
                for out in batch:
                    if isinstance(out, BaseException):
                        done = True
                        raise out
                    cached = int(getattr(out, "num_cached_tokens", 0) or 0)
                    if getattr(out, "prompt_token_ids", None):  # the expanded prompt, images as their tokens
                        prompt_len = len(out.prompt_token_ids)
                    c = out.outputs[0]
                    text.append(c.text)
                    tokens += len(c.token_ids)
                    if logprobs is not None:
                        logprobs.extend(self._logprobs(c, top))  # type: ignore[arg-type]
                    if c.finish_reason is not None:
                        finish = {"length": "length", "abort": "cancelled"}.get(c.finish_reason, "stop")
                        stop = c.stop_reason if isinstance(c.stop_reason, str) else None
                completion += tokens
                if finish is not None:
                    done = True
                    yield GenerationChunk(text="".join(text), tokens=tokens, logprobs=logprobs, finish_reason=finish,
                                          stop_sequence=stop, usage=Usage(prompt_tokens=prompt_len,
                                                                          completion_tokens=completion, cached_tokens=cached))
                    return
                yield GenerationChunk(text="".join(text), tokens=tokens, logprobs=logprobs)
                if cancelled():
                    break
            if not done:
                yield GenerationChunk(finish_reason="cancelled",
                                      usage=Usage(prompt_tokens=prompt_len, completion_tokens=completion, cached_tokens=cached))
        finally:
            pumping.cancel()
            if not done:
                self._run(self.engine.abort(rid))
                log.info("request %s aborted in the engine after %d tokens", rid, completion)

    def _logprobs(self, c: Any, top: int) -> list[TokenLogprob]:
        out = []
        for token, alternatives in zip(c.token_ids, c.logprobs or []):
            chosen = alternatives.get(token)
            text = chosen.decoded_token if chosen is not None and chosen.decoded_token is not None else self.detokenize([token])
            ranked = sorted(alternatives.items(), key=lambda kv: -kv[1].logprob)[:top]
            out.append(TokenLogprob(token=text, logprob=float(chosen.logprob) if chosen is not None else float("-inf"),
                                    bytes=list(text.encode()),
                                    top=[(lp.decoded_token or self.detokenize([t]), float(lp.logprob)) for t, lp in ranked]))
        return out

    # -- embeddings ------------------------------------------------------------------------------------

    def embed(self, inputs: list[str] | list[list[int]]) -> EmbeddingResult:
        if not self.pooling:
            raise NotImplementedError("this model is not loaded for embeddings: set embeddings: true in its YAML")
        from vllm.pooling_params import PoolingParams

        prompts = [list(x) if isinstance(x, list) else self.tokenize(x, True) for x in inputs]
        for ids in prompts:
            if len(ids) > self.max_model_len:
                raise ValueError(f"an input is {len(ids)} tokens; this model's context is {self.max_model_len}")

        async def one(ids: list[int]) -> list[float]:
            result = None
            async for out in self.engine.encode({"prompt_token_ids": ids}, PoolingParams(task="embed"), uuid.uuid4().hex):
                result = out
            return [float(v) for v in result.outputs.data.tolist()]  # type: ignore[union-attr]

        async def all_of() -> list[list[float]]:
            return list(await asyncio.gather(*(one(ids) for ids in prompts)))

        return EmbeddingResult(vectors=self._run(all_of()), prompt_tokens=sum(len(p) for p in prompts))

    def close(self) -> None:
        try:
            self.engine.shutdown()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
