"""The backend contract, item by item: what each conformance check pins and how an author fixes a failure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Item:
    title: str
    fix: str


CONTRACT: dict[str, Item] = {
    "registration": Item(
        "the backend registers under its name, with its aliases, capabilities and a description",
        "in your register_backends hook call register(NAME, aliases=(...), capabilities=(...), description=..., "
        "check=..., options=OPTIONS), and expose the hooks module as a 'localai.backends' entry point of a "
        "distribution named localai-*"),
    "capabilities": Item(
        "every capability the backend registers is declared by the test class and exercised",
        "make the test class's `capabilities` list exactly what register(..., capabilities=...) declares"),
    "option-table": Item(
        "the backend documents its options: entries in an option table",
        "pass options=[localai.options.OptionSpec(name, type, help, default=...), ...] to register(); "
        "set `has_options = False` on the test class if the backend takes no options"),
    "check-no-engine": Item(
        "discovery, check() and parse_options run without importing the engine",
        "import the engine only inside load_model (or the model module it imports); in check() use "
        "importlib.util.find_spec('engine') instead of importing it"),
    "available": Item(
        "check() says the engine can run here",
        "install the engine in this environment, or fix check() (it returns a reason string when the engine cannot run)"),
    "option-errors": Item(
        "a bad options: entry is refused with a ValueError naming the option",
        "parse with localai.options.parse_option_list(options, OPTIONS) in parse_options, or raise "
        "ValueError(f\"option {name!r}: ...\") yourself; never ignore an unknown option"),
    "load": Item(
        "the model loads in its worker process and describes itself",
        "return your model object from load_model; its info() returns localai.types.ModelInfo(backend=..., "
        "context_size=..., supports_grammar=..., ...) matching the registered capabilities"),
    "load-missing-file": Item(
        "a missing model file fails the load with a message naming the file",
        "call localai.config.require_model_file(config, model_path) at the top of load_model"),
    "unload": Item(
        "the worker shuts down promptly and cleanly, closing the model",
        "make the model's close() free the engine quickly without raising (and idempotent)"),
    "greedy": Item(
        "temperature 0 gives the same, non-empty text every time",
        "map request.sampling.temperature == 0 to greedy (argmax) sampling in generate()"),
    "stream": Item(
        "a streamed completion joins to exactly the non-streamed one",
        "yield every piece of text exactly once from generate(), and the same finish_reason"),
    "stop": Item(
        "stop strings end the generation, never appear in the text, and are reported",
        "hold back text that could still begin a stop string (localai.stopping.StopMatcher), and end with "
        "finish_reason='stop' and stop_sequence=<the matched string> on the last chunk"),
    "length": Item(
        "max_tokens ends the generation after exactly that many tokens with finish_reason 'length' (end tokens "
        "banned with sampling.ignore_eos)",
        "count sampled tokens and stop at request.max_tokens with finish_reason='length'; with "
        "request.sampling.ignore_eos never sample an end-of-generation token"),
    "seed": Item(
        "the same seed at temperature > 0 reproduces the text",
        "seed the engine's sampler per request from request.sampling.seed"),
    "cancel": Item(
        "a cancelled generation stops within a few tokens and ends with finish_reason 'cancelled'",
        "poll cancelled() between tokens in generate() and then yield a last chunk with finish_reason='cancelled'"),
    "usage": Item(
        "usage counts are honest",
        "on the last chunk set usage=Usage(prompt_tokens=<tokens fed, BOS included>, completion_tokens=<tokens "
        "sampled>), and give each text chunk `tokens` = the tokens it stands for"),
    "tokenize": Item(
        "tokenize/detokenize round-trip text and add BOS only when asked",
        "implement tokenize(text, add_special) and detokenize(tokens) on the model with the engine's tokenizer"),
    "embeddings": Item(
        "embeddings have one fixed size, are deterministic, distinguish inputs (and are unit length if claimed)",
        "implement embed(inputs) -> EmbeddingResult(vectors=[...], prompt_tokens=N) with one pooled vector per input"),
    "constraints": Item(
        "a backend with the grammar capability enforces JSON schemas (a forced tool call's arguments validate)",
        "turn request.constraint (json_schema or grammar) into the engine's constrained decoding in generate()"),
    "no-constraints": Item(
        "a backend without the grammar capability refuses constraints clearly (NotImplementedError -> 400)",
        "raise NotImplementedError('... cannot enforce ...') in generate() when request.constraint is set, before "
        "the first chunk, and report ModelInfo.supports_grammar=False"),
    "chat": Item(
        "chat completions work through the server, streamed and not",
        "give the core a chat template (ModelInfo.chat_template) or render chats yourself (renders_chat=True)"),
    "image": Item(
        "an image model returns n PNGs of the asked size; the same seed gives the same bytes, another seed others",
        "implement generate_image(request, cancelled) on the model (localai.protocol.ImageModel): request.n base64 "
        "PNGs of request.width x request.height, image i seeded with request.seed + i; set ModelInfo.image (its size "
        "limits) in info()"),
    "vision": Item(
        "a vision model answers by the image it gets: the same image the same greedy answer, another image another, "
        "streamed or not, alone or concurrent, whatever was cached before",
        "report ModelInfo.vision=True; the core hands you checked image bytes (ContentPart.image, ImageData). If the "
        "core renders your prompt (renders_chat=False), set ModelInfo.image_placeholder and feed request.images in "
        "the order their placeholders stand in request.prompt; key any prompt cache on the image content (sha256)"),
    "vision-usage": Item(
        "usage counts an image's prompt tokens exactly",
        "count each image as the tokens it decodes to (embeddings plus the begin/end tokens around them) in "
        "usage.prompt_tokens, and set `image_tokens` on the test class to that number"),
    "invariance": Item(
        "a backend claiming batch_invariant gives a greedy request the same tokens and logprobs (to 1e-6) cold, "
        "with its prompt cached, after a sibling sharing its prefix, and among concurrent requests",
        "every kernel must compute a sequence's row alike whatever shares its batch or was cached before: one "
        "attention and matmul path per shape class (see the llama-cpp backend's batch_invariant), or claim nothing"),
    "concurrency": Item(
        "8 concurrent requests all complete, each with the text it gets alone",
        "generate() is called from several threads at once: serialise inside the model (a lock or a queue) "
        "if the engine is not thread-safe, and keep per-request state per request"),
    "crash": Item(
        "a worker crash fails only that model's in-flight requests, clearly, and the model reloads",
        "keep all engine state inside the worker; if this fails for your backend only, check that load_model "
        "can run again after a crash (stale lock files, ports)"),
    "errors": Item(
        "requests the model cannot serve answer a 4xx in the API's error format, never a 500 or a hang",
        "raise ValueError (bad request) or NotImplementedError (unsupported) in generate() before the first chunk"),
}


def message(item: str, detail: str) -> str:
    c = CONTRACT[item]
    return f"backend contract [{item}]: {c.title}.\n  what happened: {detail}\n  how to fix: {c.fix}"


def fail(item: str, detail: str) -> None:
    pytest.fail(message(item, detail), pytrace=False)


def check(condition: object, item: str, detail: str) -> None:
    if not condition:
        fail(item, detail)


@contextmanager
def contract(item: str) -> Iterator[None]:
    """Any error inside becomes a failure of ``item``, carrying the backend's own message."""
    detail = None
    try:
        yield
    except pytest.fail.Exception:
        raise
    except Exception as exc:  # noqa: BLE001 - a backend's error is the finding
        detail = f"{type(exc).__name__}: {exc}"
    if detail is not None:
        fail(item, detail)  # outside the except: the report shows the contract, not a chained traceback
