"""Hook specifications a backend plugin implements.

A plugin is a module (or object) exposed through the ``localai.backends`` entry-point group
whose functions are decorated with :data:`localai.hookimpl`. The core calls the hooks below.

Where hooks run:

* ``register_backends`` and ``parse_options`` run in the **server process** at start-up and must
  not import the inference engine (``localai backends`` and ``localai --help`` stay fast).
* ``load_model``, ``generate``, ``embed``, ``tokenize``, ``detokenize``, ``generate_image`` and ``unload_model`` run in
  the model's **worker process** (one per loaded model); import the engine there, lazily.

A backend is a declaration: a plugin implements ``register_backends`` and nothing else, giving each backend's
names, capabilities, option table, parser (``parse=``) and loader (``load="pkg.module:Class.load"``, imported in the
worker only). The core dispatches by the backend a model's YAML names (as simonw/llm dispatches by the registered
model object), then calls the loaded model's methods for ``generate``, ``embed``, ``tokenize``, ``detokenize`` and
``close`` (:class:`localai.protocol.Model`, through the ``trylast`` fallbacks in :mod:`localai.registry.fallbacks`).

The per-model hooks stay ``firstresult`` hooks a plugin may still implement (answering only for its own model
objects, ``None`` otherwise). ``parse_options`` and ``load_model`` checking the backend name are the first release's
form: they keep working for one release, and registering a backend without ``load=`` while implementing them warns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from localai.config import ModelConfig
    from localai.types import EmbeddingResult, GenerateRequest, GenerationChunk, ImageRequest, ImageResult

hookspec = pluggy.HookspecMarker("localai")


@hookspec
def register_backends(register: Callable[..., None]) -> None:
    """Declare the backends this plugin serves.

    :param register: call it once per backend as
        ``register(name, *, aliases=(), capabilities=(), formats=(), description="",
        check=None, options=None, yaml_fields=(), python=None, load=None, parse=None)``:

        * ``name``: the canonical backend id a model YAML's ``backend:`` names.
        * ``aliases``: other accepted spellings (case, ``.`` and ``_`` are normalised anyway).
        * ``capabilities``: what the backend can do: ``"completion"``, ``"chat"``,
          ``"embeddings"``, ``"tokenize"``, ``"grammar"``, ``"vision"``, ``"image"`` (image generation),
          ``"prompt_cache"`` (keeps a prompt's state in the YAML's ``prompt_cache_path`` file, which the worker gets
          as an absolute path, honouring ``prompt_cache_all`` and ``prompt_cache_ro``; without it that key is refused).
        * ``formats``: model file suffixes it serves without a ``backend:`` line, e.g. ``("gguf",)``.
        * ``check``: a callable returning ``None`` when the engine can run here, else a
          human-readable reason (``"llama_cpp is not installed"``). It must not import the engine.
        * ``options``: a list of :class:`localai.options.OptionSpec` documenting ``options:`` entries.
        * ``yaml_fields``: top-level model YAML keys the backend reads beyond the core's schema (vLLM's
          ``gpu_memory_utilization``, ...), reached through ``config.model_extra``; any other unknown key is
          warned about at load.
        * ``python``: the interpreter to start this backend's workers with (default: the server's).
        * ``load``: the loader, ``"package.module:Class.load"`` (or a callable), called in the worker as
          ``load(config, model_path, options)`` and returning an object following :class:`localai.protocol.Model`.
          The reference is imported only there, so the engine never loads in the server.
        * ``parse``: ``parse(options, config) -> dict`` for the model's ``options:`` list, in the server process
          (``ValueError`` naming the option for a bad one); without it the core parses ``options`` by the table.

    Called once in the server process at start-up. Not ``firstresult``: every plugin is asked.
    A plugin raising here is reported as broken by name; the others still register.
    """


@hookspec(firstresult=True)
def parse_options(backend: str, options: list[str], config: ModelConfig) -> dict[str, Any] | None:
    """Deprecated (declare ``parse=`` in ``register`` instead). Turn a model's ``options:`` list (LocalAI's
    ``name`` / ``name:value`` entries) into settings.

    :param backend: the canonical backend id the model resolved to.
    :param options: the raw entries, in YAML order.
    :param config: the whole model config, for options that depend on other fields.
    :return: the parsed settings (JSON-serialisable), handed to :func:`load_model` as ``options``;
        ``None`` if this plugin does not serve ``backend``.
    :raises ValueError: for an unknown option or a value that does not parse; the message names
        the option. The core reports it against the model and file.

    Called in the server process when model configs load, so errors show in ``localai models``
    before any request. ``firstresult``: the first non-``None`` answer is used.
    """


@hookspec(firstresult=True)
def load_model(backend: str, config: ModelConfig, model_path: str | None, options: dict[str, Any]) -> Any:
    """Deprecated (declare ``load=`` in ``register`` instead). Load a model and return an opaque model object that
    later hooks receive.

    :param backend: the canonical backend id.
    :param config: the model config (paths already resolved inside the models folder).
    :param model_path: absolute path of ``parameters.model``, or ``None`` if the config has none.
    :param options: what :func:`parse_options` returned (``{}`` if no plugin parsed options).
    :return: the plugin's model object, or ``None`` if ``backend`` is not this plugin's.
        The object should expose ``info() -> localai.types.ModelInfo``.
    :raises Exception: a load failure; its message reaches the client as a 5xx naming the model.

    Called once per worker process, which serves exactly one model. ``firstresult``.
    """


@hookspec(firstresult=True)
def generate(model: Any, request: GenerateRequest, cancelled: Callable[[], bool]) -> Iterator[GenerationChunk] | None:
    """Stream a completion for ``request`` from ``model``.

    :param model: an object this plugin's :func:`load_model` returned.
    :param request: the internal request. For chats the core has already rendered
        ``request.prompt`` unless the model reported ``renders_chat``.
    :param cancelled: poll it between tokens; once it returns ``True`` stop and yield a final
        chunk with ``finish_reason="cancelled"``.
    :return: an iterator of :class:`localai.types.GenerationChunk` whose last item has
        ``finish_reason`` and ``usage`` set, or ``None`` if ``model`` is not this plugin's.
        Stop strings in ``request.stop`` must not appear in the text; report the one that
        matched in ``stop_sequence``. A ``request.constraint`` the engine cannot enforce must
        raise ``NotImplementedError`` with a clear message, never be silently ignored.
        With ``request.incremental`` false (the client waits for the whole answer) the text may come
        in one chunk at the end: the same text, tokens and usage, without a message per token.

    Called in the worker, possibly from several threads at once (one per request); a backend
    that cannot run requests concurrently must serialise them itself. ``firstresult``.

    Optional fast path: the iterator may also offer ``push(emit)``. The worker then calls it instead of
    iterating; the backend calls ``emit(chunk)`` for every chunk, in order, from the thread that produces them
    (its decode loop), and ``push`` returns once the last chunk was emitted, or raises the generation's error.
    This spares each token a hand-over to the worker's thread, a wake-up on the cores the model decodes on.
    """


@hookspec(firstresult=True)
def embed(model: Any, inputs: list[str] | list[list[int]]) -> EmbeddingResult | None:
    """Embed each input (text or token ids) into one pooled vector.

    :return: one vector per input, in order, with the prompt token count; ``None`` if ``model``
        is not this plugin's. Raise ``NotImplementedError`` if the model cannot embed.

    Called in the worker. ``firstresult``.
    """


@hookspec(firstresult=True)
def tokenize(model: Any, text: str, add_special: bool) -> list[int] | None:
    """Token ids of ``text`` (with BOS etc. when ``add_special``); ``None`` if not this plugin's model.

    Called in the worker. ``firstresult``.
    """


@hookspec(firstresult=True)
def count_prompt_tokens(model: Any, request: dict[str, Any]) -> int | None:
    """Tokens the prompt of ``request`` (a :class:`~localai.types.GenerateRequest` as JSON, images included)
    takes, each image counted as the tokens it decodes to; ``None`` if not this plugin's model.

    Asked only for prompts with images (a text prompt is counted with ``tokenize``). Called in the worker.
    ``firstresult``.
    """


@hookspec(firstresult=True)
def detokenize(model: Any, tokens: list[int]) -> str | None:
    """Text of ``tokens``; ``None`` if not this plugin's model. Called in the worker. ``firstresult``."""


@hookspec(firstresult=True)
def generate_image(model: Any, request: ImageRequest, cancelled: Callable[[], bool]) -> ImageResult | None:
    """Generate ``request.n`` PNG images for ``request`` with ``model``.

    :param model: an object this plugin's :func:`load_model` returned.
    :param request: the internal image request: prompt, negative prompt (LocalAI's text after ``|``),
        size (already checked against the model's :class:`localai.types.ImageLimits`), ``n``, ``seed``
        (image ``i`` uses ``seed + i``; same seed, same bytes), ``steps`` and, for image-to-image,
        ``init_image`` (base64) with ``strength``.
    :param cancelled: poll it between denoising steps (the pipeline's step callback); once it returns
        ``True`` stop and return a result with ``finish_reason="cancelled"`` and no images.
    :return: a :class:`localai.types.ImageResult` with base64 PNGs, or ``None`` if ``model`` is not this
        plugin's. Raise ``localai.errors.QueueFull`` when the model's wait queue is full (429),
        ``ValueError`` for a request the model cannot take (400), ``NotImplementedError`` for a mode it
        does not support (image-to-image on a text-to-image pipeline: 400).

    Called in the worker, possibly from several threads at once; a pipeline that cannot run requests
    concurrently must serialise them itself. The model's ``info()`` should set ``image`` (its size limits)
    and ``img2img``. ``firstresult``.
    """


@hookspec
def unload_model(model: Any) -> None:
    """Release ``model``'s resources before its worker exits. Every plugin is asked; ignore foreign models.

    The core's fallback then calls ``model.close()`` if the model has one, so most plugins need no
    implementation (and ``close`` should be idempotent)."""


@hookspec
def register_tool_parsers(register: Callable[..., None]) -> None:
    """Add tool-call output parsers: ``register(name, factory, *, architectures=(), markers=())``.

    ``factory()`` returns a fresh :class:`localai.tools.parsers.ToolCallParser`. ``architectures``
    are GGUF ``general.architecture`` values and ``markers`` substrings of a chat template that
    select the parser when the model config does not name one. Called in the server process.
    """
