"""``BackendConformance``: the contract every backend plugin meets, checked against its real engine.

Subclass it in a backend's tests, naming the backend, a small model and the capabilities::

    class TestMine(BackendConformance):
        backend = "my-backend"
        model = {"parameters": {"model": "tiny.gguf"}, "context_size": 512}
        capabilities = ("completion", "chat", "embeddings", "tokenize")

        def model_files(self):
            return {"tiny.gguf": Path("/path/to/tiny.gguf")}

Checks run in three places, as in production: in this process (registration, options, as the server
process runs them), in one real worker process (``python -m localai.worker``) and through one real
``localai run`` server with the official OpenAI SDK. Servers and workers are shared by the class.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from localai.testing.conformance.contract import check, contract, fail
from localai.testing.conformance.harness import WorkerHarness, catalog, in_threads, write_model_yaml
from localai.testing.conformance.vision import VISION, VISION_COLD, VisionChecks
from localai.types import Constraint, GenerateRequest, GenerationChunk, SamplingParams, Usage

KNOWN_CAPABILITIES = ("completion", "chat", "embeddings", "tokenize", "grammar", "vision", "image", "prompt_cache")
HEAVY_MODULES = ("torch", "transformers", "vllm", "llama_cpp", "ik_llama_cpp", "diffusers", "openvino",
                 "onnxruntime", "tensorflow", "jax")
MAIN, EMBED, OTHER, BADOPT, MISSING = "conformance", "conformance-embed", "conformance-b", "conformance-badopt", "conformance-missing"
BAD_OPTION = "no_such_option_for_conformance"
PROMPT_CACHE, PROMPT_CACHE_FILE = "conformance-prompt-cache", "prompt-cache/conformance.bin"

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "London", "Rome"]},
                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}


# A 1x1 red PNG.
RED_PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")


def _png_size(b64: str) -> tuple[int, int] | None:
    """(width, height) from a base64 PNG's IHDR, or ``None`` if it is not a PNG."""
    import base64
    import struct

    raw = base64.b64decode(b64)
    if raw[:8] != b"\x89PNG\r\n\x1a\n" or raw[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", raw[16:24])


def _text(chunks: list[GenerationChunk]) -> str:
    return "".join(c.text for c in chunks)


def _last(chunks: list[GenerationChunk], item: str) -> GenerationChunk:
    check(chunks and chunks[-1].finish_reason is not None, item,
          f"the generation ended without a last chunk carrying finish_reason (chunks: {chunks[-3:]!r})")
    return chunks[-1]


def _pick_stop(chunks: list[GenerationChunk]) -> str | None:
    """A stop string straddling two chunks near the middle, whose first occurrence is exactly there."""
    full = _text(chunks)
    pos = 0
    candidates: list[tuple[int, str]] = []
    for a, b in zip(chunks, chunks[1:]):
        pos += len(a.text)
        left, right = a.text[-2:], b.text[:2]
        stop = left + right
        if left and right and stop.strip() and full.find(stop) == pos - len(left) and pos - len(left) > 0:
            candidates.append((abs(pos - len(full) // 2), stop))
    return min(candidates)[1] if candidates else None


def _mid_stop(full: str) -> str | None:
    """A short stop string near the middle of ``full`` whose first occurrence is there (not at the start)."""
    middle = len(full) // 2
    for width in (3, 2, 1):
        for i in sorted(range(1, max(1, len(full) - width + 1)), key=lambda i: abs(i - middle)):
            stop = full[i: i + width]
            if stop.strip() and full.find(stop) == i:
                return stop
    return None


class BackendConformance(VisionChecks):
    """Base class of a backend's conformance tests; set the class attributes below in a subclass."""

    backend: ClassVar[str] = ""
    """The backend's registered name (a YAML's ``backend:``)."""
    model: ClassVar[dict[str, Any]] = {}
    """The model YAML (``name`` and ``backend`` are added), e.g. ``{"parameters": {"model": "tiny.gguf"}}``."""
    capabilities: ClassVar[tuple[str, ...]] = ()
    """What the backend registers and this suite exercises: completion, chat, embeddings, tokenize, grammar, vision."""
    aliases: ClassVar[tuple[str, ...]] = ()
    """Aliases the backend must accept."""
    embeddings_model: ClassVar[dict[str, Any] | None] = None
    """The YAML of the embeddings model (default: ``model`` with ``embeddings: true``)."""
    normalized_embeddings: ClassVar[bool] = False
    """Claim unit-length embedding vectors."""
    engine_modules: ClassVar[tuple[str, ...]] = ()
    """Top-level modules of the engine that discovery, ``check()`` and ``parse_options`` must not import."""
    has_options: ClassVar[bool] = True
    prompt: ClassVar[str] = "The three primary colors are"
    long_prompt: ClassVar[str] = "Count from one to one hundred: one, two, three, four,"
    max_tokens: ClassVar[int] = 12
    # Set when the backend promises the same greedy answer whatever the prompt cache held and whoever shared the
    # batch (and its model YAML runs it so): the suite then checks cold, warm, sibling-first and concurrent runs.
    batch_invariant: ClassVar[bool] = False
    image_steps: ClassVar[int] = 2
    """Denoising steps for the ``image`` checks (keep them few: the checks run several generations)."""
    env: ClassVar[dict[str, str]] = {}
    """Extra environment for the server and workers."""
    timeout: ClassVar[float] = 120

    @classmethod
    def model_files(cls) -> dict[str, Path]:
        """Files to link into the models folder, by the name the YAML uses."""
        return {}

    # -- fixtures (one set per test class) --------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def models_path(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        if not cls.backend:
            pytest.fail("set `backend` (the registered backend name) on your BackendConformance subclass", pytrace=False)
        folder = tmp_path_factory.mktemp(f"conformance-{cls.backend}") / "models"
        folder.mkdir()
        for name, source in cls.model_files().items():
            (folder / name).symlink_to(Path(source).resolve())
        write_model_yaml(folder, MAIN, cls.backend, cls.model)
        write_model_yaml(folder, OTHER, cls.backend, cls.model)
        write_model_yaml(folder, BADOPT, cls.backend, {**cls.model, "options": [*cls.model.get("options", []), f"{BAD_OPTION}:1"]})
        if "embeddings" in cls.capabilities:
            write_model_yaml(folder, EMBED, cls.backend, cls.embeddings_model or {**cls.model, "embeddings": True})
        if "vision" in cls.capabilities:
            for name in (VISION, VISION_COLD):
                write_model_yaml(folder, name, cls.backend, cls.vision_model or cls.model)
        if "prompt_cache" in cls.capabilities:
            write_model_yaml(folder, PROMPT_CACHE, cls.backend, {**cls.model, "prompt_cache_path": PROMPT_CACHE_FILE})
        params = dict(cls.model.get("parameters") or {})
        if params.get("model"):
            write_model_yaml(folder, MISSING, cls.backend, {**cls.model, "parameters": {**params, "model": "missing-conformance-file.bin"}})
        return folder

    @pytest.fixture(scope="class")
    @classmethod
    def environment(cls) -> Iterator[None]:
        saved = {k: os.environ.get(k) for k in cls.env}
        os.environ.update(cls.env)
        yield
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    @pytest.fixture(scope="class")
    @classmethod
    def models(cls, models_path: Path, environment: None) -> Any:
        return catalog(models_path)

    @pytest.fixture(scope="class")
    @classmethod
    def registered(cls, models: Any) -> Any:
        from localai.registry.backends import BackendError

        try:
            backend = models.registry.resolve(cls.backend)
        except BackendError:
            backend = None
        if backend is None:
            installed = ", ".join(sorted(models.registry.backends)) or "none"
            errors = "; ".join(models.registry.errors + [f"{i.name}: {i.error}" for i in models.registry.pm.infos.values() if i.error])
            fail("registration", f"no installed plugin registers backend {cls.backend!r} (registered: {installed})"
                                 + (f"; plugin errors: {errors}" if errors else ""))
        return backend

    @staticmethod
    def _entry(models: Any, name: str) -> Any:
        entry = models.get(name)
        check(entry is not None and entry.usable, "load", f"model {name!r} is not usable: {getattr(entry, 'problems', None)}")
        return entry

    @staticmethod
    def _load(harness: WorkerHarness) -> None:
        detail = None
        try:
            harness.load()
        except Exception as exc:  # noqa: BLE001
            detail = f"{type(exc).__name__}: {exc}"
            harness.stop()
        if detail is not None:
            fail("load", detail)

    @pytest.fixture(scope="class")
    @classmethod
    def worker(cls, models: Any, registered: Any) -> Iterator[WorkerHarness]:
        if registered.unavailable:
            fail("available", f"backend {registered.name} reports: {registered.unavailable}")
        harness = WorkerHarness(cls._entry(models, MAIN), timeout=cls.timeout)
        cls._load(harness)
        yield harness
        if harness.worker.alive:
            harness.stop()

    @pytest.fixture(scope="class")
    @classmethod
    def embed_worker(cls, models: Any, registered: Any) -> Iterator[WorkerHarness]:
        cls.needs("embeddings")
        harness = WorkerHarness(cls._entry(models, EMBED), timeout=cls.timeout)
        cls._load(harness)
        yield harness
        harness.stop()

    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, models_path: Path, registered: Any) -> Iterator[Any]:
        from localai.testing.processes import ServerProcess

        if registered.unavailable:
            fail("available", f"backend {registered.name} reports: {registered.unavailable}")
        srv = ServerProcess(models_path, env=dict(cls.env))
        with contract("load"):
            srv.start()
        try:
            yield srv
        finally:
            srv.stop()

    @pytest.fixture(scope="class")
    @classmethod
    def client(cls, server: Any) -> Iterator[Any]:
        import openai

        with openai.OpenAI(base_url=server.url + "/v1", api_key="conformance", max_retries=0, timeout=cls.timeout,
                           _strict_response_validation=True) as c:
            yield c

    @classmethod
    def needs(cls, capability: str) -> None:
        if capability not in cls.capabilities:
            pytest.skip(f"backend does not declare {capability!r}")

    @classmethod
    def greedy(cls, prompt: str | None = None, *, max_tokens: int | None = None, temperature: float = 0,
               seed: int | None = None, ignore_eos: bool = False, **kw: Any) -> GenerateRequest:
        return GenerateRequest(model=MAIN, prompt=prompt or cls.prompt, max_tokens=max_tokens or cls.max_tokens,
                               sampling=SamplingParams(temperature=temperature, seed=seed, ignore_eos=ignore_eos), **kw)

    @pytest.fixture(scope="class")
    @classmethod
    def greedy_chunks(cls, worker: WorkerHarness) -> list[GenerationChunk]:
        cls.needs("completion")
        with contract("greedy"):
            return worker.generate(cls.greedy())

    # -- in the server process: registration and options ------------------------------------------

    def test_registration(self, registered: Any, models: Any) -> None:
        from localai.names import normalise

        check(registered.name == normalise(self.backend), "registration",
              f"{self.backend!r} resolves to {registered.name!r}: register the backend under its canonical name")
        check(registered.description.strip(), "registration", "the backend has no description")
        for alias in (*self.aliases, *registered.aliases):
            try:
                resolved = models.registry.resolve(alias).name
            except Exception as exc:  # noqa: BLE001
                resolved = str(exc)
            check(resolved == registered.name, "registration", f"alias {alias!r} resolves to {resolved!r}")
        missing = set(map(normalise, self.aliases)) - set(map(normalise, registered.aliases))
        check(not missing, "registration", f"aliases {sorted(missing)} are not registered")
        dist = registered.distribution
        check(dist is None or dist.startswith("localai-"), "registration",
              f"the plugin's distribution is named {dist!r}; publish it as localai-<name> so users find it")

    def test_capabilities(self, registered: Any) -> None:
        unknown = sorted(set(self.capabilities) - set(KNOWN_CAPABILITIES))
        check(not unknown, "capabilities",
              f"this conformance suite has no check for {unknown} (known: {', '.join(KNOWN_CAPABILITIES)})")
        declared, actual = set(self.capabilities), set(registered.capabilities)
        check(declared == actual, "capabilities",
              f"the backend registers {sorted(actual)} but the test class declares {sorted(declared)}: "
              f"not exercised {sorted(actual - declared)}, not registered {sorted(declared - actual)}")

    def test_option_table(self, registered: Any) -> None:
        from localai.options import PARSERS, OptionSpec

        if not self.has_options:
            check(not registered.options, "option-table", "the backend registers options but the test class says has_options = False")
            return
        check(registered.options, "option-table", "register() got no options table")
        names: set[str] = set()
        for spec in registered.options:
            check(isinstance(spec, OptionSpec), "option-table", f"{spec!r} is not a localai.options.OptionSpec")
            check(spec.type in PARSERS, "option-table", f"option {spec.name!r} has unknown type {spec.type!r} (one of {sorted(PARSERS)})")
            check(spec.help.strip(), "option-table", f"option {spec.name!r} has no help text")
            for key in (spec.name, *spec.aliases):
                check(key.lower() not in names, "option-table", f"option name {key!r} appears twice")
                names.add(key.lower())

    def test_discovery_and_check_do_not_import_the_engine(self, models_path: Path, registered: Any) -> None:
        watched = sorted(set(self.engine_modules) | set(HEAVY_MODULES))
        script = (
            "import json, os, sys\n"
            "from localai.bootstrap import bootstrap\n"
            f"setup = bootstrap({str(models_path)!r}, os.environ.get('LOCALAI_BACKENDS_PATH') or None)\n"
            f"b = setup.registry.resolve({self.backend!r}); b.unavailable\n"
            f"print(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)))\n"
        )
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             env={**os.environ, **self.env})
        check(out.returncode == 0, "check-no-engine", f"discovery failed: {out.stderr[-2000:]}")
        imported = json.loads(out.stdout.strip().splitlines()[-1])
        check(not imported, "check-no-engine", f"discovery, check() and parse_options imported {imported}")
        check(registered.unavailable is None, "available", f"backend {registered.name} reports: {registered.unavailable}")

    def test_option_errors_name_the_option(self, models: Any, registered: Any) -> None:
        from localai.config import ModelConfig

        entry = models.get(BADOPT)
        problems = "; ".join(entry.problems) if entry else "no entry"
        check(entry is not None and BAD_OPTION in problems, "option-errors",
              f"the unknown option {BAD_OPTION!r} was not reported against the model (problems: {problems or 'none'})")
        config = ModelConfig.model_validate({**self.model, "name": MAIN, "backend": registered.name})
        for spec in registered.options:
            if spec.type in ("str", "list") and not spec.choices:
                continue  # any text parses
            bad = "%not-a-valid-value%"
            try:
                models.registry.parse_options(registered, [f"{spec.name}:{bad}"], config)
            except ValueError as exc:
                check(spec.name in str(exc) or any(a in str(exc) for a in spec.aliases), "option-errors",
                      f"{spec.name}:{bad} raised ValueError({str(exc)!r}), which does not name the option")
            except Exception as exc:  # noqa: BLE001
                fail("option-errors", f"{spec.name}:{bad} raised {type(exc).__name__}: {exc} (expected ValueError)")
            else:
                fail("option-errors", f"{spec.name}:{bad} (type {spec.type}) was accepted")

    # -- in a real worker process ----------------------------------------------------------------

    def test_load_describes_the_model(self, worker: WorkerHarness, registered: Any) -> None:
        info = worker.info
        assert info is not None
        check(info.backend, "load", "ModelInfo.backend is empty")
        if {"completion", "chat"} & set(self.capabilities):
            check(info.context_size and info.context_size > 0, "load", f"ModelInfo.context_size is {info.context_size!r}")
        check(info.supports_grammar == ("grammar" in self.capabilities), "load",
              f"ModelInfo.supports_grammar is {info.supports_grammar} but 'grammar' "
              f"{'is' if 'grammar' in self.capabilities else 'is not'} a capability")
        if "vision" not in self.capabilities or self.vision_model is None:  # else the vision model claims it
            check(info.vision == ("vision" in self.capabilities), "load", f"ModelInfo.vision is {info.vision} but "
                  f"'vision' {'is' if 'vision' in self.capabilities else 'is not'} a capability")

    def test_image_generation(self, worker: WorkerHarness) -> None:
        self.needs("image")
        limits = worker.info.image if worker.info else None
        check(limits is not None, "image", "ModelInfo.image (the model's size limits) is not set")
        assert limits is not None
        w = h = limits.min_size * 2 if limits.min_size * 2 <= limits.max_size else limits.min_size
        with contract("image"):
            first = worker.image(prompt="a red square", width=w, height=h, n=2, seed=7, steps=self.image_steps)
            again = worker.image(prompt="a red square", width=w, height=h, n=2, seed=7, steps=self.image_steps)
            other = worker.image(prompt="a red square", width=w, height=h, n=1, seed=8, steps=self.image_steps)
        check(len(first.images) == 2, "image", f"n=2 gave {len(first.images)} image(s)")
        for b64 in first.images:
            size = _png_size(b64)
            check(size == (w, h), "image", f"asked for {w}x{h}, got a PNG of {size}")
        check(first.images == again.images, "image", "the same seed gave different PNG bytes")
        check(first.images[0] != first.images[1], "image", "images 0 and 1 of one request are identical (seed + i)")
        check(other.images[0] != first.images[0], "image", "seeds 7 and 8 gave the same image")

    def test_missing_model_file_fails_the_load_clearly(self, models: Any, registered: Any) -> None:
        entry = models.get(MISSING)
        if entry is None:
            pytest.skip("the model names no file (parameters.model)")
        harness = WorkerHarness(entry, timeout=self.timeout)
        try:
            harness.load()
        except Exception as exc:  # noqa: BLE001
            check("missing-conformance-file.bin" in str(exc), "load-missing-file", f"the load failed with {exc!r}")
        else:
            fail("load-missing-file", "loading a model whose file does not exist succeeded")
        finally:
            harness.stop()

    def test_greedy_is_deterministic(self, worker: WorkerHarness, greedy_chunks: list[GenerationChunk]) -> None:
        text = _text(greedy_chunks)
        check(text.strip(), "greedy", f"greedy generation produced no text (chunks: {greedy_chunks!r})")
        with contract("greedy"):
            again = _text(worker.generate(self.greedy()))
        check(again == text, "greedy", f"two greedy runs differ: {text!r} vs {again!r}")

    def test_whole_answer_equals_the_stream(self, worker: WorkerHarness, greedy_chunks: list[GenerationChunk]) -> None:
        """``incremental=False`` (a non-streamed client) may come in fewer chunks, never with another answer."""
        with contract("greedy"):
            whole = worker.generate(self.greedy(incremental=False))
        check(_text(whole) == _text(greedy_chunks), "greedy",
              f"incremental=False gave {_text(whole)!r}, the stream {_text(greedy_chunks)!r}")
        a, b = whole[-1], greedy_chunks[-1]
        check((a.finish_reason, a.stop_sequence) == (b.finish_reason, b.stop_sequence), "greedy",
              f"incremental=False finished with {a.finish_reason!r}, the stream with {b.finish_reason!r}")
        check(sum(c.tokens for c in whole) == sum(c.tokens for c in greedy_chunks), "usage",
              "the chunks' `tokens` differ between incremental=False and the stream")
        check(a.usage is not None and b.usage is not None and a.usage.completion_tokens == b.usage.completion_tokens,
              "usage", f"usage differs: {a.usage} vs {b.usage}")

    def test_max_tokens_gives_length_and_honest_usage(self, worker: WorkerHarness) -> None:
        """End tokens banned (``ignore_eos``), so the answer must run to ``max_tokens`` whatever the model wants."""
        self.needs("completion")
        with contract("length"):
            greedy_chunks = worker.generate(self.greedy(ignore_eos=True))
        last = _last(greedy_chunks, "length")
        check(last.finish_reason == "length", "length", f"finish_reason is {last.finish_reason!r} after max_tokens={self.max_tokens}")
        usage = last.usage
        check(usage is not None, "usage", "the last chunk has no usage")
        assert usage is not None
        check(usage.completion_tokens == self.max_tokens, "length",
              f"usage.completion_tokens is {usage.completion_tokens}, max_tokens was {self.max_tokens}")
        counted = sum(c.tokens for c in greedy_chunks)
        check(counted == usage.completion_tokens, "usage",
              f"the chunks' `tokens` add up to {counted} but usage.completion_tokens is {usage.completion_tokens}")
        if "tokenize" in self.capabilities:
            with contract("tokenize"):
                prompt_tokens = len(worker.call("tokenize", text=self.prompt, add_special=True))
            check(usage.prompt_tokens == prompt_tokens, "usage",
                  f"usage.prompt_tokens is {usage.prompt_tokens} but the prompt tokenizes (with BOS) to {prompt_tokens}")
        else:
            check(usage.prompt_tokens > 0, "usage", "usage.prompt_tokens is 0")

    def test_stop_strings(self, worker: WorkerHarness, greedy_chunks: list[GenerationChunk]) -> None:
        full = _text(greedy_chunks)
        stop = _pick_stop(greedy_chunks) or _mid_stop(full)
        if not stop:
            fail("stop", f"the greedy text {full!r} is too short to test stop strings")
        assert stop is not None
        with contract("stop"):
            chunks = worker.generate(self.greedy(stop=["\u2603never-appears\u2603", stop]))
        text, last = _text(chunks), _last(chunks, "stop")
        check(stop not in text, "stop", f"the stop string {stop!r} appears in the text {text!r}")
        check(text == full[: full.index(stop)], "stop", f"with stop={stop!r} the text is {text!r}, expected {full[: full.index(stop)]!r}")
        check(last.finish_reason == "stop", "stop", f"finish_reason is {last.finish_reason!r}, expected 'stop'")
        check(last.stop_sequence == stop, "stop", f"stop_sequence is {last.stop_sequence!r}, expected {stop!r}")

    def test_seed_reproduces(self, worker: WorkerHarness) -> None:
        self.needs("completion")

        def sample() -> str:
            with contract("seed"):
                return _text(worker.generate(self.greedy(temperature=1.0, seed=4242)))

        first, second = sample(), sample()
        check(first.strip() and first == second, "seed", f"seed 4242 at temperature 1 gave {first!r} and then {second!r}")

    def test_cancel_stops_within_a_few_tokens(self, worker: WorkerHarness) -> None:
        self.needs("completion")
        seen: list[int] = []

        def after_two(chunk: GenerationChunk, chunks: list[GenerationChunk]) -> bool:
            if sum(1 for c in chunks if c.text) >= 2 and not seen:
                seen.append(sum(c.tokens for c in chunks))
                return True
            return False

        started = time.monotonic()
        with contract("cancel"):
            chunks = worker.generate(self.greedy(self.long_prompt, max_tokens=256), on_chunk=after_two)
        last = _last(chunks, "cancel")
        if not seen:
            fail("cancel", f"the generation ended before a second text chunk; use a long_prompt that runs on (got {_text(chunks)!r})")
        check(last.finish_reason == "cancelled", "cancel",
              f"finish_reason is {last.finish_reason!r} after cancelling at token {seen[0]} "
              f"({last.usage.completion_tokens if last.usage else '?'} tokens, {time.monotonic() - started:.1f}s)")
        extra = (last.usage.completion_tokens if last.usage else sum(c.tokens for c in chunks)) - seen[0]
        check(extra <= 8, "cancel", f"{extra} more tokens were generated after the cancel")

    def test_concurrent_requests_in_the_worker(self, worker: WorkerHarness, greedy_chunks: list[GenerationChunk]) -> None:
        expected = _text(greedy_chunks)
        results = in_threads(4, lambda i: _text(worker.generate(self.greedy())), self.timeout)
        check(all(r == expected for r in results), "concurrency", f"expected {expected!r} from each, got {results!r}")

    def test_tokenize_round_trip(self, worker: WorkerHarness) -> None:
        self.needs("tokenize")
        text = "Hello, world! Ünïcödé 東京 🙂 1234"
        with contract("tokenize"):
            plain = worker.call("tokenize", text=text, add_special=False)
            special = worker.call("tokenize", text=text, add_special=True)
            back = worker.call("detokenize", tokens=plain)
        check(plain and all(isinstance(t, int) for t in plain), "tokenize", f"tokenize gave {plain!r}")
        check(back == text, "tokenize", f"detokenize(tokenize(t)) is {back!r}, expected {text!r}")
        check(len(special) >= len(plain), "tokenize", f"add_special=True gave fewer tokens ({len(special)}) than without ({len(plain)})")

    def test_constraint_refused_without_grammar(self, worker: WorkerHarness) -> None:
        """Enforcement itself is checked through the server (a forced tool call), which the core plans."""
        self.needs("completion")
        if "grammar" in self.capabilities:
            pytest.skip("the backend claims grammar: see test_http_constraints")
        constraint = Constraint(type="json_schema", json_schema=WEATHER_SCHEMA)
        try:
            worker.generate(self.greedy(max_tokens=4, constraint=constraint))
        except Exception as exc:  # noqa: BLE001
            from localai.runtime.worker.client import WorkerError

            check(isinstance(exc, WorkerError) and exc.kind == "unsupported", "no-constraints",
                  f"a constrained request failed with {exc!r}, not NotImplementedError")
            return
        fail("no-constraints", "a request with a JSON-schema constraint was accepted and the constraint ignored")

    def test_embeddings(self, embed_worker: WorkerHarness) -> None:
        self.needs("embeddings")
        inputs = ["hello world", "a completely different sentence about boats", "hello world"]
        with contract("embeddings"):
            result = embed_worker.call("embed", inputs=inputs)
            again = embed_worker.call("embed", inputs=inputs[:1])
            ids = embed_worker.call("tokenize", text="hello world", add_special=True) if "tokenize" in self.capabilities else None
            by_ids = embed_worker.call("embed", inputs=[ids]) if ids else None
        vectors = result["vectors"]
        check(len(vectors) == 3, "embeddings", f"{len(inputs)} inputs gave {len(vectors)} vectors")
        dims = {len(v) for v in vectors} | ({len(by_ids["vectors"][0])} if by_ids else set())
        check(len(dims) == 1 and min(dims) > 0, "embeddings", f"vector sizes differ or are empty: {sorted(dims)}")
        size = embed_worker.info.embedding_size if embed_worker.info else None
        check(size in (None, *dims), "embeddings", f"ModelInfo.embedding_size is {size}, vectors have {sorted(dims)}")
        check(all(math.isfinite(x) for v in vectors for x in v), "embeddings", "a vector holds NaN or infinity")
        close = lambda a, b: max(abs(x - y) for x, y in zip(a, b)) < 1e-4  # noqa: E731
        check(close(vectors[0], vectors[2]) and close(vectors[0], again["vectors"][0]), "embeddings",
              "the same input embeds differently within a batch or across calls")
        check(not close(vectors[0], vectors[1]), "embeddings", "different inputs give the same vector")
        check(result.get("prompt_tokens", 0) > 0, "usage", "EmbeddingResult.prompt_tokens is 0")
        if self.normalized_embeddings:
            norms = [math.sqrt(sum(x * x for x in v)) for v in vectors]
            check(all(abs(n - 1) < 1e-3 for n in norms), "embeddings", f"vectors are claimed unit length, norms are {norms}")

    def test_prompt_cache_survives_a_restart(self, models: Any, registered: Any) -> None:
        """``prompt_cache_path``: the state one worker writes starts the same prompt in the next, same answer."""
        self.needs("prompt_cache")
        entry = self._entry(models, PROMPT_CACHE)
        request = self.greedy(" ".join([self.prompt] * 8)).model_copy(update={"model": PROMPT_CACHE})
        answers = []
        for _ in range(2):
            harness = WorkerHarness(entry, timeout=self.timeout)
            self._load(harness)
            try:
                with contract("prompt-cache"):
                    answers.append(harness.generate(request))
            finally:
                harness.stop()
        cold, warm = (_last(chunks, "prompt-cache").usage or Usage() for chunks in answers)
        check(entry.prompt_cache_path is not None and entry.prompt_cache_path.is_file(), "prompt-cache",
              f"no prompt cache file at {entry.prompt_cache_path} after a request and an unload")
        check(cold.cached_tokens == 0, "prompt-cache", f"the first request reports {cold.cached_tokens} cached tokens "
                                                       "with no cache file yet")
        check(warm.cached_tokens >= cold.prompt_tokens // 2, "prompt-cache",
              f"after a restart the same {cold.prompt_tokens}-token prompt reused {warm.cached_tokens} tokens of the file")
        check(_text(answers[1]) == _text(answers[0]), "prompt-cache",
              f"the answer from the cache file differs: {_text(answers[1])!r} against {_text(answers[0])!r}")

    def test_unload(self, worker: WorkerHarness) -> None:
        """Last of the worker checks: shuts the class's worker down."""
        with contract("unload"):
            code = worker.stop()
        check(code == 0, "unload", f"the worker exited with {code} (0 expected) after unload_model/close()")
        check(worker.stop_seconds < 15, "unload", f"shutting down took {worker.stop_seconds:.1f}s")

    # -- through the HTTP server (official OpenAI SDK) --------------------------------------------

    @classmethod
    def complete(cls, client: Any, **kw: Any) -> Any:
        body = {"model": MAIN, "prompt": cls.prompt, "max_tokens": cls.max_tokens, "temperature": 0, **kw}
        return client.completions.create(**body)

    @pytest.fixture(scope="class")
    @classmethod
    def http_greedy(cls, client: Any) -> Any:
        cls.needs("completion")
        with contract("greedy"):
            return cls.complete(client)

    def test_http_greedy_stream_and_usage(self, client: Any, server: Any, http_greedy: Any) -> None:
        text = http_greedy.choices[0].text
        check(text.strip(), "greedy", "the server's greedy completion is empty")
        with contract("greedy"):
            check(self.complete(client).choices[0].text == text, "greedy", "two greedy completions through the server differ")
        with contract("stream"):  # raw SSE: the SDK's strict Completion type rejects the chunks' null finish_reason
            body = {"model": MAIN, "prompt": self.prompt, "max_tokens": self.max_tokens, "temperature": 0, "stream": True}
            with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=self.timeout) as r:
                check(r.status_code == 200, "stream", f"a streamed completion answered {r.status_code}")
                pieces = [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: {")]
        streamed = "".join(p["choices"][0]["text"] for p in pieces if p.get("choices"))
        finish = [p["choices"][0]["finish_reason"] for p in pieces if p.get("choices") and p["choices"][0].get("finish_reason")]
        check(streamed == text, "stream", f"streamed {streamed!r}, not streamed {text!r}")
        check(finish == [http_greedy.choices[0].finish_reason], "stream", f"streamed finish reasons {finish}")
        usage = http_greedy.usage
        if http_greedy.choices[0].finish_reason == "length":
            check(usage.completion_tokens == self.max_tokens, "length",
                  f"usage.completion_tokens is {usage.completion_tokens} after max_tokens={self.max_tokens}")
        if "tokenize" in self.capabilities:
            r = httpx.post(server.url + "/v1/tokenize", json={"model": MAIN, "content": self.prompt, "add_special": True}, timeout=self.timeout)
            check(r.status_code == 200, "tokenize", f"POST /v1/tokenize answered {r.status_code}: {r.text}")
            check(usage.prompt_tokens == len(r.json()["tokens"]), "usage",
                  f"usage.prompt_tokens is {usage.prompt_tokens}, /v1/tokenize counts {len(r.json()['tokens'])}")
        check(usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, "usage", f"total_tokens is wrong: {usage}")

    def test_http_stop_and_seed(self, client: Any, http_greedy: Any) -> None:
        full = http_greedy.choices[0].text
        stop = _mid_stop(full)
        if stop is None:
            fail("stop", f"the greedy text {full!r} is too short to test stop strings")
        assert stop is not None
        with contract("stop"):
            cut = self.complete(client, stop=[stop])
        check(cut.choices[0].text == full[: full.index(stop)] and cut.choices[0].finish_reason == "stop", "stop",
              f"with stop={stop!r}: {cut.choices[0].text!r} ({cut.choices[0].finish_reason}), expected {full[: full.index(stop)]!r}")
        with contract("seed"):
            a, b = (self.complete(client, temperature=1.0, seed=99).choices[0].text for _ in range(2))
        check(a == b, "seed", f"seed 99 through the server gave {a!r} then {b!r}")

    def test_http_eight_concurrent_requests(self, client: Any, http_greedy: Any) -> None:
        prompts = [self.prompt, "Paris is the capital of", "def fibonacci(n):", "Once upon a time"]
        with contract("concurrency"):
            expected = {p: self.complete(client, prompt=p).choices[0].text for p in prompts[1:]} | {self.prompt: http_greedy.choices[0].text}
        results = in_threads(8, lambda i: self.complete(client, prompt=prompts[i % 4]).choices[0].text, self.timeout)
        wrong = {i: r for i, r in enumerate(results) if r != expected[prompts[i % 4]]}
        check(not wrong, "concurrency", f"requests {sorted(wrong)} got {list(wrong.values())!r}, expected {expected!r}")

    def test_http_same_answer_cold_warm_and_batched(self, client: Any, server: Any) -> None:
        """Greedy tokens and logprobs do not depend on the prompt cache or the batch (backends claiming it)."""
        self.needs("completion")
        if not self.batch_invariant:
            pytest.skip("backend does not declare batch_invariant")
        long = " ".join([self.long_prompt] * 12)  # a few hundred tokens: several prompt chunks

        def answer(prompt: str) -> tuple[list[str], list[float]]:
            lp = self.complete(client, prompt=prompt, logprobs=1, extra_body={"ignore_eos": True}).choices[0].logprobs
            return list(lp.tokens), list(lp.token_logprobs)

        with contract("invariance"):
            others = ["Paris is the capital of", "def fibonacci(n):", self.prompt]
            cold = answer(long)
            warm = answer(long)
            answer(long[: len(long) // 2] + " and so on")  # a sibling sharing the first half
            sibling_first = answer(long)
            batched = in_threads(4, lambda i: answer(long if i == 0 else others[i - 1]), self.timeout)[0]
        for label, got in (("warm", warm), ("after a sibling", sibling_first), ("batched with 3 others", batched)):
            gap = max((abs(a - b) for a, b in zip(cold[1], got[1])), default=0.0)
            check(got[0] == cold[0] and gap <= 1e-6, "invariance",
                  f"{label}: {''.join(got[0])!r} (logprob gap {gap:.3g}) against cold {''.join(cold[0])!r}")

    def test_http_chat(self, client: Any) -> None:
        self.needs("chat")
        body = {"model": MAIN, "messages": [{"role": "user", "content": "Name a color."}], "max_tokens": self.max_tokens, "temperature": 0}
        with contract("chat"):
            client.chat.completions.create(**body)  # so both runs below meet the same prompt-cache state
            plain = client.chat.completions.create(**body)
            streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**body, stream=True) if c.choices)
        text = plain.choices[0].message.content or ""
        check(text.strip(), "chat", "the chat answer is empty")
        check(streamed == text, "stream", f"streamed chat {streamed!r}, not streamed {text!r}")

    def test_http_text_model_refuses_images(self, client: Any) -> None:
        import openai

        if "vision" in self.capabilities:
            pytest.skip("the backend declares vision: the vision checks run instead")
        self.needs("chat")
        content = [{"type": "text", "text": "What color is this image?"}, {"type": "image_url", "image_url": {"url": RED_PIXEL}}]
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=MAIN, messages=[{"role": "user", "content": content}], max_tokens=2)
        check(info.value.code == "vision_not_supported", "errors",
              f"an image sent to a model without vision answered {info.value.status_code} {info.value.code}")

    def test_http_images(self, client: Any, server: Any) -> None:
        import base64

        self.needs("image")
        with contract("image"):
            b64 = client.images.generate(model=MAIN, prompt="a red square", n=1, response_format="b64_json",
                                         extra_body={"seed": 3, "step": self.image_steps})
            url = client.images.generate(model=MAIN, prompt="a red square", n=1, response_format="url",
                                         extra_body={"seed": 3, "step": self.image_steps})
        check(len(b64.data) == 1 and b64.data[0].b64_json and not b64.data[0].url, "image",
              f"response_format b64_json gave {b64.data!r}")
        check(len(url.data) == 1 and url.data[0].url and not url.data[0].b64_json, "image", f"response_format url gave {url.data!r}")
        fetched = httpx.get(url.data[0].url, headers={"authorization": f"Bearer {client.api_key}"}, timeout=self.timeout)
        check(fetched.status_code == 200 and fetched.content == base64.b64decode(b64.data[0].b64_json), "image",
              f"the image url answered {fetched.status_code}, or other bytes than the same seed's b64_json")

    def test_http_constraints(self, client: Any) -> None:
        import openai

        tools = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                                   "parameters": WEATHER_SCHEMA}}]
        body = {"model": MAIN, "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
                "tools": tools, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "max_tokens": 64, "temperature": 0}
        if not {"chat", "completion"} & set(self.capabilities):
            pytest.skip("no generation capability")
        if "grammar" not in self.capabilities:
            try:
                client.chat.completions.create(**body)
            except openai.BadRequestError:
                return
            except Exception as exc:  # noqa: BLE001
                fail("no-constraints", f"a forced tool call failed with {type(exc).__name__}: {exc}, expected a 400")
            fail("no-constraints", "a forced tool call on a backend without grammar was answered without enforcing it")
        import jsonschema

        with contract("constraints"):
            r = client.chat.completions.create(**body)
        calls = r.choices[0].message.tool_calls or []
        check(len(calls) >= 1 and calls[0].function.name == "get_weather", "constraints", f"no forced tool call in {r.choices[0].message!r}")
        with contract("constraints"):
            jsonschema.validate(json.loads(calls[0].function.arguments), WEATHER_SCHEMA)

    def test_http_embeddings(self, client: Any) -> None:
        self.needs("embeddings")
        with contract("embeddings"):
            r = client.embeddings.create(model=EMBED, input=["hello world", "boats"], encoding_format="float")
            again = client.embeddings.create(model=EMBED, input="hello world", encoding_format="float")
        check(len(r.data) == 2 and len(r.data[0].embedding) == len(r.data[1].embedding) > 0, "embeddings",
              f"shapes: {[len(d.embedding) for d in r.data]}")
        check(max(abs(a - b) for a, b in zip(r.data[0].embedding, again.data[0].embedding)) < 1e-4, "embeddings",
              "the same input embeds differently across requests")
        check(r.usage.prompt_tokens > 0, "usage", "embeddings usage.prompt_tokens is 0")

    def test_http_tokenize(self, server: Any) -> None:
        self.needs("tokenize")
        text = "Hello, world! Ünïcödé 🙂"
        r = httpx.post(server.url + "/v1/tokenize", json={"model": MAIN, "content": text}, timeout=self.timeout)
        check(r.status_code == 200, "tokenize", f"POST /v1/tokenize answered {r.status_code}: {r.text}")
        back = httpx.post(server.url + "/v1/detokenize", json={"model": MAIN, "tokens": r.json()["tokens"]}, timeout=self.timeout)
        check(back.status_code == 200 and back.json()["content"] == text, "tokenize", f"round trip through the server: {back.text}")

    def test_http_bad_requests_are_4xx(self, client: Any, server: Any) -> None:
        import openai

        r = httpx.post(server.url + "/v1/completions", json={"model": BADOPT, "prompt": "x", "max_tokens": 2}, timeout=self.timeout)
        check(r.status_code >= 400 and BAD_OPTION in r.text, "option-errors",
              f"a request to a model with a bad option answered {r.status_code}: {r.text[:300]}")
        if "completion" in self.capabilities and self.model.get("context_size"):
            too_long = "hello " * (int(self.model["context_size"]) * 2)
            try:
                self.complete(client, prompt=too_long, max_tokens=2)
            except openai.BadRequestError:
                pass
            except Exception as exc:  # noqa: BLE001
                fail("errors", f"a prompt longer than the context failed with {type(exc).__name__}: {exc}")
            else:
                fail("errors", "a prompt twice the context size was accepted")

    def test_http_worker_crash_fails_only_its_requests(self, client: Any, server: Any, http_greedy: Any) -> None:
        """Last: kills the model's worker mid-stream while another model's request runs."""
        from localai.testing.processes import worker_pids

        self.needs("completion")
        with contract("crash"):
            self.complete(client, model=OTHER, max_tokens=2)  # load the bystander first
        body = {"model": MAIN, "prompt": self.long_prompt, "max_tokens": 256, "temperature": 0, "stream": True}
        bystander: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: bystander.update(r=self.complete(client, model=OTHER)))
        lines: list[str] = []
        with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=self.timeout) as r:
            for line in r.iter_lines():
                lines.append(line)
                if line.startswith("data: {") and len(lines) >= 2 and thread.ident is None:
                    pids = [p for p in worker_pids(server.proc.pid) if f"LOCALAI_WORKER_MODEL={MAIN}\0".encode()
                            in Path(f"/proc/{p}/environ").read_bytes()]
                    check(len(pids) == 1, "crash", f"expected one worker for {MAIN!r}, found {pids}")
                    thread.start()
                    os.kill(pids[0], signal.SIGKILL)
        thread.join(self.timeout)
        errors = [json.loads(x[6:]).get("error") for x in lines if x.startswith("data: {") and '"error"' in x]
        check(errors and errors[-1] and errors[-1].get("code") == "worker_died", "crash",
              f"the stream of the killed worker ended without a worker_died error (last lines: {lines[-3:]})")
        check("r" in bystander and bystander["r"].choices[0].text == http_greedy.choices[0].text, "crash",
              f"the other model's request did not complete correctly: {bystander!r}")
        with contract("crash"):
            check(self.complete(client).choices[0].text == http_greedy.choices[0].text, "crash",
                  "after the crash the model did not reload to the same greedy answer")
