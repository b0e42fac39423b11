"""The one native handler every protocol adapter translates into (Ollama's pattern).

``Engine.start`` takes a :class:`GenerateRequest`, applies the model config's defaults, renders
chats with the chosen template, plans tools and constraints, has the worker accept the generation,
and returns an iterator turning its raw text into :mod:`localai.events`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from localai import tools
from localai.chat import templates
from localai.constraints import limits as json_limits
from localai.constraints.diagnose import cut_at
from localai.errors import invalid
from localai.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallEnd, ToolCallStart
from localai.media import resolve as media
from localai.media.images import ImageSettings
from localai.registry.catalog import ModelEntry
from localai.runtime.models import Loaded, Runtime
from localai.runtime.worker.client import GenerationStream, WorkerDied, describe_exit
from localai.types import (
    Constraint,
    EmbeddingResult,
    GenerateRequest,
    ImageLimits,
    ImageRequest,
    ImageResult,
    Message,
    ModelInfo,
    SamplingParams,
    TokenLogprob,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from localai.server.metrics import GenerationMetrics

log = logging.getLogger("localai.engine")


@dataclass
class Result:
    """A whole generation, gathered from its events (for non-streaming responses)."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish: Finish = field(default_factory=lambda: Finish("stop"))


MAX_TOKENS_LIMIT = 2**31 - 1  # engines count tokens in 32-bit ints; more is never meaningful

CONFIG_SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "presence_penalty",
                          "frequency_penalty", "seed")


def apply_defaults(request: GenerateRequest, entry: ModelEntry) -> GenerateRequest:
    """Fill what the request leaves unset from the model config (LocalAI's ``parameters:``)."""
    cfg = entry.config
    p = cfg.parameters
    s = request.sampling
    inherited = {f: getattr(s, f) if getattr(s, f) is not None else getattr(p, f) for f in CONFIG_SAMPLING_FIELDS}
    sampling = SamplingParams(**inherited, logit_bias=s.logit_bias, ignore_eos=s.ignore_eos or bool(p.ignore_eos))
    stop = list(dict.fromkeys([*request.stop, *cfg.stopwords]))
    max_tokens = request.max_tokens if request.max_tokens is not None else p.max_tokens
    return request.model_copy(update={"sampling": sampling, "stop": stop, "max_tokens": max_tokens, "model": entry.name})


def chat_template(entry: ModelEntry, info: ModelInfo) -> str:
    cfg = entry.config
    yaml_template = None if cfg.template.use_tokenizer_template and info.chat_template else cfg.template.chat
    source, origin = templates.choose_template(yaml_template, info.chat_template, info.architecture)
    log.debug("model %r: chat template from %s", entry.name, origin)
    return source


def with_system_prompt(messages: list[Message], entry: ModelEntry) -> list[Message]:
    if entry.config.system_prompt and not any(m.role == "system" for m in messages):
        return [Message(role="system", content=entry.config.system_prompt), *messages]
    return messages


def with_json_limits(constraint: Constraint | None, request: GenerateRequest, entry: ModelEntry) -> Constraint | None:
    """A JSON-schema constraint carrying its resolved limits (request over model YAML over the defaults).

    ``json_limits`` on a request that produces no JSON-schema constraint would change nothing: a 400, not
    silently ignored."""
    if constraint is None or constraint.type != "json_schema":
        if request.json_limits is not None:
            raise invalid("json_limits applies to JSON output only (response_format json_object or json_schema, or a "
                          "forced tool call); this request has none", param="json_limits")
        return constraint
    limits = json_limits.resolve(request.json_limits, entry.config.json_limits)
    return constraint.model_copy(update={"limits": limits})


def log_cut(request: GenerateRequest, text: str, usage: Usage | None) -> None:
    """A JSON answer ran into max_tokens: say which field it was writing and the limits in force."""
    where = cut_at(text)
    tokens = usage.completion_tokens if usage is not None else None
    limits = request.constraint.limits if request.constraint is not None else None
    log.warning("model %r: JSON answer cut by max_tokens (%s tokens) at %s, inside %s; JSON limits: %s "
                "(json_limits in the request or the model YAML changes them)", request.model,
                tokens if tokens is not None else request.max_tokens, where.path,
                "the value" if where.inside == "nothing" else f"a {where.inside}", json_limits.describe(limits))


@dataclass
class Generation:
    """One started generation: the model it resolved to (``entry.name`` is what a response names), its events
    (text, reasoning and tool events, then exactly one :class:`Finish`; closing the iterator early cancels the
    generation in the worker) and, when asked for, the prompt's token count (Anthropic's ``message_start``)."""

    entry: ModelEntry
    events: AsyncIterator[Event]
    prompt_tokens: int | None = None

    async def collect(self) -> Result:
        return await collect(self.events)


class Engine:
    def __init__(self, runtime: Runtime, images: ImageSettings | None = None) -> None:
        self.runtime = runtime
        self.images = images or ImageSettings()  # limits on images in chat requests (localai.media)
        self._tool_parsers: tools.ParserRegistry | None = None

    @property
    def tool_parsers(self) -> tools.ParserRegistry:
        """Tool-call parser families: built-in plus plugins' ``register_tool_parsers`` (built on first use)."""
        if self._tool_parsers is None:
            catalog = getattr(self.runtime, "catalog", None)
            self._tool_parsers = tools.registry.with_plugins(getattr(getattr(catalog, "registry", None), "pm", None))
        return self._tool_parsers

    def resolve(self, model: str | None, usecase: str) -> ModelEntry:
        """The model a request names (or the first serving ``usecase``), refused when it cannot do ``usecase``."""
        entry = self.runtime.entry(model, usecase)
        self.runtime.check_servable(entry)  # a broken model says why before anything else is judged
        if usecase not in entry.usecases() and not (usecase == "chat" and "completion" in entry.usecases()):
            raise invalid(f"model {entry.name!r} does not support {usecase}", param="model", code="unsupported_model")
        return entry

    async def load(self, model: str | None, usecase: str) -> Loaded:
        return await self.runtime.load(self.resolve(model, usecase))

    def prepare(self, loaded: Loaded, request: GenerateRequest) -> tuple[GenerateRequest, tools.OutputParser]:
        """Turn ``request`` into what ``loaded``'s backend receives, plus its output parser."""
        entry, info = loaded.entry, loaded.info
        request = apply_defaults(request.model_copy(update={"model": entry.name}), entry)
        if request.max_tokens is not None and request.max_tokens > MAX_TOKENS_LIMIT:
            raise invalid(f"max_tokens must be at most {MAX_TOKENS_LIMIT} (model {entry.name!r} has a context of "
                          f"{info.context_size or 'unknown size'})", param="max_tokens", code="invalid_max_tokens")
        if request.messages is not None:
            images = [p.image for m in request.messages for p in m.images()]
            if images and (not info.vision or None in images):  # resolved by media.resolve (see _start)
                raise invalid(f"model {entry.name!r} does not support image input", param="messages", code="vision_not_supported")
            messages = with_system_prompt(request.messages, entry)
            source = chat_template(entry, info)
            plan = tools.plan(request.model_copy(update={"messages": messages}), template_source=source, info=info, config=entry.config,
                              parser_registry=self.tool_parsers)
            stop = list(dict.fromkeys([*request.stop, *plan.stop]))
            update: dict = {"messages": plan.messages, "constraint": plan.constraint, "stop": stop}
            if not info.renders_chat:
                try:
                    update["prompt"] = templates.render(
                        source, plan.messages, bos_token=info.bos_token, eos_token=info.eos_token,
                        tools=plan.template_tools, extra=request.chat_template_kwargs,
                        image_placeholder=info.image_placeholder,
                    )
                except Exception as exc:  # noqa: BLE001 - a template raising on these messages is the caller's problem
                    raise invalid(f"chat template of model {entry.name!r} rejected the messages: {exc}", param="messages") from exc
                plan.rendered(update["prompt"])
                if images:
                    if not info.image_placeholder:
                        raise invalid(f"model {entry.name!r} (backend {info.backend}) claims vision but names no image "
                                      "placeholder for its rendered prompt", param="messages", code="vision_not_supported")
                    found = update["prompt"].count(info.image_placeholder)
                    if found != len(images):  # the backend pairs placeholders with images in order: never guess
                        raise invalid(f"the chat template of model {entry.name!r} rendered {found} image placeholders for "
                                      f"{len(images)} images (it dropped or repeated an image)", param="messages")
                    update["images"] = images
            parser = plan.parser
        else:
            if isinstance(request.prompt, str) and entry.config.template.completion:
                request = request.model_copy(update={"prompt": templates.render_completion(entry.config.template.completion, request.prompt)})
            update = {"constraint": request.constraint or tools.planning.response_format_constraint(request)}
            parser = tools.planning.PlainParser()
        if update.get("constraint") is not None and not info.supports_grammar:
            raise invalid(f"model {entry.name!r} (backend {info.backend}) cannot constrain its output to a grammar or JSON schema",
                          code="constraint_not_supported")
        update["constraint"] = with_json_limits(update.get("constraint"), request, entry)
        return request.model_copy(update=update), parser

    async def open(self, request: GenerateRequest, usecase: str = "chat", *, count_prompt: bool = False) -> Generation:
        """Resolve the model, load it, prepare the request and start generating: every error raises here, before a
        response is sent, so it keeps its HTTP status. The one entry point for text generation."""
        return (await self.open_all([request], usecase, count_prompt=count_prompt))[0]

    async def open_all(self, requests: list[GenerateRequest], usecase: str = "chat", *,
                       count_prompt: bool = False) -> list[Generation]:
        """:meth:`open` for requests naming one model (a request's ``n`` choices): resolved once, started in turn;
        if one fails, the ones already started are cancelled."""
        entry = self.resolve(requests[0].model or None, usecase)
        started: list[Generation] = []
        try:
            for request in requests:
                started.append(await self._start(entry, request, count_prompt))
        except BaseException:
            for gen in started:
                await gen.events.aclose()  # type: ignore[attr-defined]
            raise
        return started

    async def _start(self, entry: ModelEntry, request: GenerateRequest, count_prompt: bool) -> Generation:
        gm = self._measure(entry, request)
        for attempt in (1, 2):
            try:
                loaded = await self.runtime.load(entry)
                request = await media.resolve(request, loaded.info, entry.name, self.images)
                backend_request, parser = self.prepare(loaded, request)
                prompt_tokens = await self._prompt_tokens(loaded, backend_request) if count_prompt else None
                chunks = await loaded.worker.open(backend_request)
                break
            except WorkerDied as exc:
                # The worker crashed before it accepted this request (it arrived while the crash was being noticed):
                # nothing of it ran to completion, so it goes once to a fresh worker. A request that itself crashes the
                # worker fails the second time.
                if attempt == 1 and exc.kind is None:
                    log.warning("model %r: %s before accepting a request; retrying it once on a new worker",
                                entry.name, describe_exit(exc.returncode))
                    continue
                if gm is not None:
                    gm.refused(exc)
                raise
            except BaseException as exc:
                if gm is not None:
                    gm.refused(exc)
                raise
        if gm is not None:
            gm.accepted()
            chunks = gm.wrap(chunks)  # type: ignore[assignment]
        return Generation(entry, self.events(chunks, parser, backend_request), prompt_tokens)

    def _measure(self, entry: ModelEntry, request: GenerateRequest) -> GenerationMetrics | None:
        """Metrics for one generation from its arrival (waiting while its model loads); ``None`` without metrics."""
        metrics = self.runtime.metrics
        if metrics is None:
            return None
        return metrics.generation(entry.name, entry.backend.name if entry.backend else "", time.monotonic(),
                                  streamed=request.incremental)

    async def events(self, gen: GenerationStream, parser: tools.OutputParser,
                     request: GenerateRequest | None = None) -> AsyncIterator[Event]:
        """Turn a worker's raw chunks into events through the request's output parser."""
        logprobs: list[TokenLogprob] = []  # waiting for the text they belong to (the parser may hold text back)
        constraint = request.constraint if request is not None else None
        written: list[str] | None = [] if constraint is not None and constraint.type == "json_schema" else None
        try:
            async for chunk in gen:
                if written is not None and chunk.text:
                    written.append(chunk.text)
                if chunk.text:
                    events = parser.feed(chunk.text)
                    logprobs.extend(chunk.logprobs or [])
                    logprobs = _attach_logprobs(events, logprobs)
                    for ev in events:
                        yield ev
                if chunk.finish_reason is not None:
                    events = parser.finish()
                    _attach_logprobs(events, logprobs)
                    for ev in events:
                        yield ev
                    reason = chunk.finish_reason
                    if reason == "length" and written is not None and request is not None:
                        log_cut(request, "".join(written), chunk.usage)
                    if parser.called_tools and reason == "stop":
                        reason = "tool_calls"
                    yield Finish(reason, chunk.usage or Usage(), chunk.stop_sequence)
                    return
        finally:
            await gen.aclose()

    async def embed(self, model: str | None, inputs: list[str] | list[list[int]],
                    dimensions: int | None = None) -> tuple[ModelEntry, EmbeddingResult]:
        """Vectors for ``inputs``; ``dimensions`` other than the model's own is refused (no truncation)."""
        loaded = await self.load(model, "embeddings")
        native = loaded.info.embedding_size
        if dimensions is not None and dimensions != native:
            raise invalid(f"model {loaded.entry.name!r} produces {native}-dimensional embeddings and cannot return "
                          f"{dimensions} dimensions; omit dimensions or set it to {native}", param="dimensions",
                          code="dimensions_not_supported")
        data = await loaded.worker.call("embed", inputs=inputs)
        return loaded.entry, EmbeddingResult.model_validate(data)

    async def generate_image(self, request: ImageRequest) -> tuple[ModelEntry, ImageResult]:
        """Images for ``request`` (``model`` empty: the first image model), generated in the model's worker.

        Fills the model's defaults (size, LocalAI's ``step``, ``diffusers.cfg_scale``), checks the size against
        the model's limits and image input against its ``img2img`` support. Cancelling the awaiting task
        (client gone) stops the denoising between steps.
        """
        loaded = await self.load(request.model or None, "image")
        entry, info = loaded.entry, loaded.info
        limits = info.image or ImageLimits()
        width, height = request.width, request.height
        if request.init_image is None:  # image-to-image without a size keeps the input image's size
            width, height = width or limits.default_width, height or limits.default_height
        if width is not None or height is not None:
            check_image_size(width or limits.default_width, height or limits.default_height, limits, entry.name)
        if request.init_image is not None and not info.img2img:
            raise invalid(f"model {entry.name!r} does not support image input (edits, variations); set "
                          "diffusers.img2img: true in its config if its pipeline can do image-to-image",
                          param="image", code="img2img_not_supported")
        cfg = entry.config
        steps = request.steps if request.steps is not None else cfg.step
        guidance = request.guidance_scale if request.guidance_scale is not None else (cfg.diffusers.cfg_scale or None)  # 0: unset (LocalAI)
        request = request.model_copy(update={"model": entry.name, "width": width, "height": height, "steps": steps,
                                             "guidance_scale": guidance})
        return entry, await loaded.worker.generate_image(request)

    async def tokenize(self, model: str | None, text: str, add_special: bool = True) -> tuple[ModelEntry, list[int]]:
        loaded = await self.runtime.get(model, "tokenize")
        return loaded.entry, await loaded.worker.call("tokenize", text=text, add_special=add_special)

    async def detokenize(self, model: str | None, tokens: list[int]) -> tuple[ModelEntry, str]:
        loaded = await self.runtime.get(model, "tokenize")
        return loaded.entry, await loaded.worker.call("detokenize", tokens=tokens)

    async def count_prompt_tokens(self, request: GenerateRequest, usecase: str = "chat") -> int:
        """Tokens the prompt of ``request`` would take, without generating."""
        loaded = await self.load(request.model or None, usecase)
        request = await media.resolve(request, loaded.info, loaded.entry.name, self.images)
        backend_request, _ = self.prepare(loaded, request)
        return await self._prompt_tokens(loaded, backend_request)

    async def _prompt_tokens(self, loaded: Loaded, backend_request: GenerateRequest) -> int:
        prompt = backend_request.prompt
        if isinstance(prompt, list):
            return len(prompt)
        if backend_request.images or loaded.info.renders_chat and media.image_parts(backend_request):
            return int(await loaded.worker.call("count_prompt_tokens",
                                                request=backend_request.model_dump(mode="json", by_alias=True)))
        tokens = await loaded.worker.call("tokenize", text=prompt or "", add_special=True)
        return len(tokens)


def check_image_size(width: int, height: int, limits: ImageLimits, model: str) -> None:
    """Refuse a size the model cannot make: each side a multiple of ``limits.multiple`` within its bounds."""
    multiple = max(8, limits.multiple)
    for side, value in (("width", width), ("height", height)):
        if value % multiple or not limits.min_size <= value <= limits.max_size:
            raise invalid(f"size: {side} {value} is not supported by model {model!r}: each side must be a multiple of "
                          f"{multiple} from {max(multiple, limits.min_size)} to {limits.max_size}", param="size",
                          code="invalid_size")


def _attach_logprobs(events: list[Event], logprobs: list[TokenLogprob]) -> list[TokenLogprob]:
    """Give pending logprobs to the first text event; what is left still waits."""
    if logprobs:
        for ev in events:
            if isinstance(ev, TextDelta):
                ev.logprobs = logprobs
                return []
    return logprobs


async def collect(events: AsyncIterator[Event]) -> Result:
    result = Result()
    text: list[str] = []
    reasoning: list[str] = []
    starts: dict[int, ToolCallStart] = {}
    async for ev in events:
        if isinstance(ev, TextDelta):
            text.append(ev.text)
            if ev.logprobs:
                result.logprobs.extend(ev.logprobs)
        elif isinstance(ev, ReasoningDelta):
            reasoning.append(ev.text)
        elif isinstance(ev, ToolCallStart):
            starts[ev.index] = ev
        elif isinstance(ev, ToolCallEnd):
            start = starts[ev.index]
            result.tool_calls.append(ToolCall(id=start.id, name=start.name, arguments=ev.arguments))
        elif isinstance(ev, Finish):
            result.finish = ev
    result.text = "".join(text)
    result.reasoning = "".join(reasoning)
    return result
