"""The internal request and result types every protocol adapter and backend shares.

Protocol adapters (OpenAI, Anthropic, Open Responses) translate into :class:`GenerateRequest`
and back from :class:`GenerationChunk` / the engine events; backends receive the same
``GenerateRequest`` inside their worker process, so every type here must survive a JSON round trip.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "cancelled", "error"]


class ImageData(BaseModel):
    """An image a client sent, fetched, decoded and checked by the core (:mod:`localai.media`): backends get these
    bytes, never a URL. ``data`` is base64 for the JSON hop to the worker; ``sha256`` keys prompt caches."""

    data: str
    media_type: str
    width: int
    height: int
    sha256: str

    def raw(self) -> bytes:
        import base64

        return base64.b64decode(self.data)

    def rgb(self) -> Any:
        """The image as an RGB PIL image, EXIF rotation applied: what every engine's image preprocessing takes."""
        import io

        from PIL import Image, ImageOps

        with Image.open(io.BytesIO(self.raw())) as img:
            return ImageOps.exif_transpose(img).convert("RGB")


class ContentPart(BaseModel):
    """One part of a message: text, or an image. The API adapters set ``image_url`` (a data URL or an http(s)
    URL) and ``where`` (the request field, for errors); the engine replaces the URL with checked ``image`` bytes
    before the request reaches a backend."""

    type: Literal["text", "image"]
    text: str | None = None
    image_url: str | None = None
    image: ImageData | None = None
    where: str | None = None


class ToolCall(BaseModel):
    """A call the assistant made; ``arguments`` is always a JSON string."""

    id: str
    name: str
    arguments: str = "{}"


class Message(BaseModel):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning: str | None = None

    def text(self, image_placeholder: str | None = None) -> str:
        """The message's text parts joined; each image becomes ``image_placeholder`` (dropped when ``None``)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join((p.text or "") if p.type == "text" else (image_placeholder or "") for p in self.content)

    def images(self) -> list[ContentPart]:
        """The message's image parts, in order."""
        if isinstance(self.content, list):
            return [p for p in self.content if p.type == "image"]
        return []


class ToolSpec(BaseModel):
    """A function the model may call; ``parameters`` is a JSON schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool = False


class ToolChoice(BaseModel):
    """What the caller demands: ``auto``, ``none``, ``required`` (any tool) or ``named``."""

    mode: Literal["auto", "none", "required", "named"] = "auto"
    name: str | None = None
    parallel: bool = True


class ResponseFormat(BaseModel):
    """Structured output: plain text, any JSON object, or JSON valid against ``schema``."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    name: str | None = None
    strict: bool = False

    model_config = {"populate_by_name": True}


class JsonLimits(BaseModel):
    """How a JSON answer may be *written* where its schema says nothing: digits of numbers, whitespace, strings.

    A schema allows ``4200000000…`` or ``0.000000…`` of any length, and a small model inside a number keeps
    choosing ``0`` until ``max_tokens``. These bounds make every answer finish; the schema's own bounds always win
    (a ``maximum`` of ``1e20`` raises the digit limit for that request). ``0`` means no limit; a field left
    unset inherits (request -> model YAML ``json_limits:`` -> the server's defaults, see
    :mod:`localai.constraints.limits`).
    """

    model_config = ConfigDict(extra="forbid")

    max_integer_digits: int | None = Field(default=None, ge=0, le=1000)
    max_fraction_digits: int | None = Field(default=None, ge=0, le=1000)
    max_exponent_digits: int | None = Field(default=None, ge=0, le=1000)
    max_string_length: int | None = Field(default=None, ge=0, le=10_000_000)
    max_items: int | None = Field(default=None, ge=0, le=10_000_000)
    max_depth: int | None = Field(default=None, ge=0, le=1000)
    # compact: {"a":1,"b":[1,2]}; spaced: {"a": 1, "b": [1, 2]} (json.dumps' default); flexible: a space or one
    # line break with up to 20 spaces/tabs of indent between any two tokens (llama.cpp's rule)
    whitespace: Literal["compact", "spaced", "flexible"] | None = None

    def over(self, base: JsonLimits | None) -> JsonLimits:
        """These limits, with what they leave unset taken from ``base``."""
        if base is None:
            return self
        return base.model_copy(update=self.model_dump(exclude_none=True))


class Constraint(BaseModel):
    """A decoding constraint the backend must enforce, or refuse clearly.

    ``json_schema`` carries a JSON schema the output must satisfy; ``grammar`` a GBNF (or Lark) grammar;
    ``regex`` a regular expression the whole output matches. The core builds these from tools and response
    formats; backends enforce them with the shared engine in :mod:`localai.constraints`. ``limits`` (JSON
    schemas only) are the resolved :class:`JsonLimits`; ``None``: the server's defaults.
    """

    type: Literal["json_schema", "grammar", "regex"]
    json_schema: dict[str, Any] | None = None
    grammar: str | None = None
    regex: str | None = None
    limits: JsonLimits | None = None


# The one set of sampling value rules: request bodies of every API and the YAML ``parameters:`` use these,
# so a value an engine would reject (llama.cpp needs repeat_penalty > 0) is a 400 / config problem, never a 500.
Temperature = Annotated[float, Field(ge=0, le=2)]
TopP = Annotated[float, Field(ge=0, le=1)]
TopK = Annotated[int, Field(ge=0)]
MinP = Annotated[float, Field(ge=0, le=1)]
RepeatPenalty = Annotated[float, Field(gt=0)]
Penalty = Annotated[float, Field(ge=-2, le=2)]  # OpenAI's presence/frequency range


class SamplingParams(BaseModel):
    """Sampling settings; ``None`` means "the model config's default, else the engine's"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    logit_bias: dict[int, float] | None = None
    ignore_eos: bool = False
    """Keep generating past end-of-generation tokens, to ``max_tokens`` or a stop string (vLLM's and llama.cpp
    server's ``ignore_eos``). Engines without a native switch ban their end tokens with :meth:`banning_eos`."""

    def banning_eos(self, eos: Iterable[int]) -> SamplingParams:
        """These params with ``eos`` biased to -inf when ``ignore_eos`` is set (the request's own bias kept)."""
        if not self.ignore_eos:
            return self
        return self.model_copy(update={"logit_bias": {**(self.logit_bias or {}), **{int(t): float("-inf") for t in eos}}})


class GenerateRequest(BaseModel):
    """The one request type every protocol translates into and every backend receives.

    Exactly one of ``messages`` or ``prompt`` is the source. For chat, the core renders
    ``prompt`` from ``messages`` with the chosen chat template before the request reaches a
    backend that does not template chats itself; such a backend uses ``prompt`` and may
    ignore ``messages``. Engines with their own templating (vLLM, transformers) may use
    ``messages`` and ``tools`` directly.
    """

    model: str
    messages: list[Message] | None = None
    prompt: str | list[int] | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    max_tokens: int | None = None
    stop: list[str] = Field(default_factory=list)
    constraint: Constraint | None = None
    json_limits: JsonLimits | None = None  # the request's own (``json_limits`` extension field); over the model's
    logprobs: int | None = None
    echo: bool = False
    add_special: bool = True
    chat_template_kwargs: dict[str, Any] | None = None
    reasoning: bool | None = None
    # False when the client wants only the whole answer (a non-streamed request): the backend may then deliver its
    # text in one final chunk instead of one per token (vLLM's FINAL_ONLY), sparing a per-token hop through the
    # worker and the server while the engine decodes. Cancellation still applies.
    incremental: bool = True
    # The chat's images in the order their placeholders (``ModelInfo.image_placeholder``) stand in ``prompt``; set
    # by the core when it renders a chat for a backend that takes images that way.
    images: list[ImageData] = Field(default_factory=list)


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top: list[tuple[str, float]] = Field(default_factory=list)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class GenerationChunk(BaseModel):
    """One piece of a backend's streamed output.

    Backends yield text chunks as they decode (``tokens`` says how many tokens the chunk
    stands for); the last chunk carries ``finish_reason`` and ``usage`` and may have empty text.
    ``stop_sequence`` names the stop string that ended generation, if any.
    """

    text: str = ""
    tokens: int = 0
    logprobs: list[TokenLogprob] | None = None
    finish_reason: FinishReason | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None


class EmbeddingResult(BaseModel):
    vectors: list[list[float]]
    prompt_tokens: int = 0


class ModelInfo(BaseModel):
    """What a loaded model tells the core about itself (returned by ``load_model``'s worker)."""

    backend: str = ""
    architecture: str | None = None
    context_size: int | None = None
    chat_template: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    embedding_size: int | None = None
    renders_chat: bool = False
    supports_grammar: bool = False
    vision: bool = False  # accepts images in chat messages (ContentPart.image)
    max_images: int | None = None  # most images one request may carry (None: the server's limit)
    # Text the core writes where each image stands when it renders the chat template itself (``renders_chat``
    # False): llama.cpp's mtmd marker, which the backend swaps for the image's embeddings in order.
    image_placeholder: str | None = None
    image: ImageLimits | None = None  # set by image generation backends
    img2img: bool = False  # the image model also takes an input image (edits, variations)
    extra: dict[str, Any] = Field(default_factory=dict)


class ImageLimits(BaseModel):
    """Image sizes a model accepts (reported by image backends in :attr:`ModelInfo.image`)."""

    multiple: int = 8
    min_size: int = 8
    max_size: int = 2048
    default_width: int = 512
    default_height: int = 512


class ImageRequest(BaseModel):
    """One image generation as every image backend receives it (``generate_image`` hook).

    ``n`` images of ``width`` x ``height``; image ``i`` is seeded with ``seed + i`` so a seed reproduces
    the same images. ``init_image`` (base64 PNG/JPEG) makes it image-to-image with ``strength``.
    ``steps`` / ``guidance_scale`` ``None`` mean the model config's default, else the pipeline's; the engine
    fills ``width`` / ``height`` (the model's default size) before a backend sees the request.
    """

    model: str
    prompt: str
    negative_prompt: str | None = None
    n: int = Field(default=1, ge=1)
    width: int | None = Field(default=None, ge=1)
    height: int | None = Field(default=None, ge=1)
    seed: int | None = None
    steps: int | None = Field(default=None, ge=1)
    guidance_scale: float | None = None
    init_image: str | None = None
    strength: float | None = Field(default=None, gt=0, le=1)


class ImageResult(BaseModel):
    """PNG images (base64) of one :class:`ImageRequest`; ``finish_reason`` ``cancelled`` means none were made."""

    images: list[str] = Field(default_factory=list)
    seed: int | None = None
    steps: int = 0
    finish_reason: Literal["stop", "cancelled"] = "stop"
