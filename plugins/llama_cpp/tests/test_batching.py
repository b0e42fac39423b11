"""Continuous batching on the real model, in process: slots, stops, cancellation, chunked prompts, queue, caches."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from localai.config import ModelConfig  # noqa: E402
from localai.errors import QueueFull  # noqa: E402
from localai.types import GenerateRequest, GenerationChunk, SamplingParams  # noqa: E402

PROMPTS = [
    "<start_of_turn>user\nWrite a poem about the sea.<end_of_turn>\n<start_of_turn>model\n",
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a land far away,",
]


def load(gguf: Path, context: int, **options: Any) -> Any:
    from localai_llama_cpp.model import LlamaCppModel

    config = ModelConfig.model_validate({"name": "g", "context_size": context, "threads": 2,
                                         "parameters": {"model": str(gguf)}})
    return LlamaCppModel.load(config, str(gguf), options, "llama-cpp")


def request(prompt: str, max_tokens: int, stop: list[str] | None = None, **sampling: Any) -> GenerateRequest:
    return GenerateRequest(model="g", prompt=prompt, max_tokens=max_tokens, stop=stop or [],
                           sampling=SamplingParams(temperature=0, **sampling))


def run(model: Any, req: GenerateRequest, cancelled: Callable[[], bool] = lambda: False) -> tuple[str, GenerationChunk]:
    chunks = list(model.generate(req, cancelled))
    return "".join(c.text for c in chunks), chunks[-1]


def concurrently(fns: list[Callable[[], Any]]) -> list[Any]:
    out: list[Any] = [None] * len(fns)
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            out[i] = fns[i]()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]
    return out


@pytest.fixture(scope="module")
def model(gguf: Path) -> Iterator[Any]:
    m = load(gguf, 2048, parallel=4)
    yield m
    m.close()


def test_slots_split_the_context(model: Any) -> None:
    sched = model.scheduler()
    assert len(sched.slots) == 4 and sched.n_ctx_slot == 512
    assert model.info().context_size == 2048
    with pytest.raises(ValueError, match="does not fit the context size of 512"):
        model.generate(GenerateRequest(model="g", prompt=list(range(2, 600))), lambda: False)


def test_batched_greedy_matches_solo(model: Any) -> None:
    solo = [run(model, request(p, 24)) for p in PROMPTS]
    batched = concurrently([lambda p=p: run(model, request(p, 24)) for p in PROMPTS])
    assert [t for t, _ in batched] == [t for t, _ in solo]
    for text, last in batched:
        assert text and last.finish_reason == "length" and last.usage.completion_tokens == 24


def test_eight_streams_with_own_stops_and_lengths(model: Any) -> None:
    refs = {p: run(model, request(p, 32))[0] for p in PROMPTS}
    cases: list[tuple[str, int, list[str]]] = []
    for i, p in enumerate(PROMPTS):
        ref = refs[p]
        stop = ref[12 + i: 16 + i]
        assert stop.strip(), ref
        cases.append((p, 32, [stop, "no such stop string"]))  # ends at the stop
        cases.append((p, 5 + 3 * i, []))  # ends at its own length
    results = concurrently([lambda c=c: run(model, request(c[0], c[1], c[2])) for c in cases])
    for (prompt, max_tokens, stop), (text, last) in zip(cases, results):
        if stop:
            assert last.finish_reason == "stop" and last.stop_sequence == stop[0]
            assert text == refs[prompt][: refs[prompt].index(stop[0])]
        else:
            assert last.finish_reason == "length" and last.usage.completion_tokens == max_tokens
            assert refs[prompt].startswith(text) and text
            assert text == run(model, request(prompt, max_tokens))[0]


def test_cancelling_one_stream_leaves_the_others(model: Any) -> None:
    solo = [run(model, request(p, 40))[0] for p in PROMPTS[1:3]]
    flag = threading.Event()

    def cancelled_one() -> tuple[str, GenerationChunk]:
        text, n = "", 0
        last = None
        for chunk in model.generate(request(PROMPTS[0], 200), flag.is_set):
            text += chunk.text
            n += 1
            if n == 3:
                flag.set()
            last = chunk
        return text, last

    def closed_one() -> int:
        gen = model.generate(request(PROMPTS[3], 200), lambda: False)
        next(gen)
        gen.close()  # the consumer goes away: the slot must be freed
        return 1

    results = concurrently([cancelled_one, closed_one] + [lambda p=p: run(model, request(p, 40)) for p in PROMPTS[1:3]])
    text, last = results[0]
    assert last.finish_reason == "cancelled" and last.usage.completion_tokens < 200
    assert [r[0] for r in results[2:]] == solo
    assert all(r[1].finish_reason == "length" for r in results[2:])
    sched = model.scheduler()
    assert sched.wait_idle(60)  # the closed stream's slot was released too
    assert all(s.job is None for s in sched.slots)


def test_long_prompt_admitted_mid_stream_does_not_stall_others(model: Any) -> None:
    long_prompt = "Here is a list of fruits: " + ", ".join(["apple", "banana", "cherry", "grape"] * 45) + ". Now"
    assert len(model.tokenize(long_prompt)) > 300
    solo = run(model, request(PROMPTS[3], 48))[0]
    log: list[str] = []
    started = threading.Event()

    def running() -> str:
        text = ""
        for i, chunk in enumerate(model.generate(request(PROMPTS[3], 48), lambda: False)):
            text += chunk.text
            log.append("run")
            if i == 2:
                started.set()
        return text

    def late_long() -> str:
        started.wait(120)
        log.append("submit")
        text = ""
        for chunk in model.generate(request(long_prompt, 4), lambda: False):
            if not text:
                log.append("long-first")
            text += chunk.text or " "
        return text

    text, _ = concurrently([running, late_long])
    assert text == solo
    between = log[log.index("submit"): log.index("long-first")]
    # The long prompt takes several chunked steps; the running stream decodes a token in each of them.
    assert between.count("run") >= 2, log


def test_full_queue_raises_queue_full(gguf: Path) -> None:
    m = load(gguf, 512, parallel=1, queue_size=1)
    try:
        running = m.generate(request(PROMPTS[1], 100), lambda: False)
        next(running)
        waiting = m.generate(request(PROMPTS[2], 4), lambda: False)
        with pytest.raises(QueueFull):
            m.generate(request(PROMPTS[3], 4), lambda: False)
        running.close()
        assert "".join(c.text for c in waiting)  # the waiter got the slot
        assert run(m, request(PROMPTS[3], 4))[1].finish_reason == "length"
    finally:
        m.close()


def test_prompt_reuse_and_ram_cache(gguf: Path) -> None:
    long_a = "Alpha document: " + " ".join(f"item{i}" for i in range(60))
    long_b = "Beta document: " + " ".join(f"entry{i}" for i in range(60))
    for cache_ram, restored in ((0, False), (64, True), (None, True)):  # None: the default, on
        m = load(gguf, 1024, parallel=1, **({} if cache_ram is None else {"cache_ram": cache_ram}))
        try:
            n = len(m.tokenize(long_a))
            first, last = run(m, request(long_a, 8))
            assert last.usage.cached_tokens == 0
            again, last = run(m, request(long_a, 8))
            assert last.usage.cached_tokens == n - 2 and again == first  # the slot kept its KV (the last 2 are redone)
            run(m, request(long_b, 8))  # takes the only slot
            third, last = run(m, request(long_a, 8))
            assert (last.usage.cached_tokens == n - 2) is restored
            assert third == first
        finally:
            m.close()


def test_cache_reuse_shifts_matching_chunks(gguf: Path) -> None:
    head = "System: you answer questions about a story. "
    middle = "An older passage that is dropped later: " + " ".join(f"w{i}" for i in range(30)) + ". "
    tail = "Story: " + " ".join(f"s{i}" for i in range(30)) + ". Question: who?"
    m = load(gguf, 1024, parallel=1, n_cache_reuse=8)
    try:
        run(m, request(head + middle + tail, 4))
        prompt = head + tail
        _, last = run(m, request(prompt, 4))
        n_head = len(m.tokenize(head))
        # More than the shared head is reused: the tail's KV was shifted into place.
        assert last.usage.cached_tokens > n_head + 20
    finally:
        m.close()


def _no_eog(m: Any) -> dict[int, float]:
    return {t: -1000.0 for t in range(300) if m.is_eog(t)}


def test_context_shift(gguf: Path) -> None:
    for shift in (False, True):
        m = load(gguf, 256, parallel=1, context_shift=shift)
        try:
            req = request(PROMPTS[3], 300, logit_bias=_no_eog(m))
            text, last = run(m, req)
            prompt = last.usage.prompt_tokens
            assert last.finish_reason == "length"
            assert last.usage.completion_tokens == (300 if shift else 256 - prompt)
        finally:
            m.close()


def test_each_request_keeps_its_own_sampling_in_a_batch(model: Any) -> None:
    from localai.types import Constraint

    seeded = GenerateRequest(model="g", prompt=PROMPTS[3], max_tokens=16,
                             sampling=SamplingParams(temperature=0.9, top_k=40, top_p=0.95, seed=7))
    grammar = GenerateRequest(model="g", prompt=PROMPTS[0], max_tokens=8, sampling=SamplingParams(temperature=0),
                              constraint=Constraint(type="grammar", grammar='root ::= "yes" | "no"'))
    logprobs = request(PROMPTS[1], 6).model_copy(update={"logprobs": 2})
    run(model, seeded)
    solo_seeded = run(model, seeded)[0]  # warm: the batched run below finds the same cached prefix
    results = concurrently([lambda: run(model, seeded), lambda: run(model, grammar), lambda: run(model, logprobs),
                            lambda: run(model, request(PROMPTS[2], 16))])
    assert results[0][0] == solo_seeded
    assert results[1][0] in ("yes", "no") and results[1][1].finish_reason == "stop"
    chunks = list(model.generate(logprobs, lambda: False))
    items = [lp for c in chunks for lp in (c.logprobs or [])]
    assert len(items) == 6 and all(lp.logprob <= 0 and len(lp.top) == 2 for lp in items)
    assert "".join(lp.token for lp in items) == "".join(c.text for c in chunks)
    assert results[3][0] == run(model, request(PROMPTS[2], 16))[0]


def test_bad_grammar_is_refused_before_streaming(model: Any) -> None:
    from localai.types import Constraint

    bad = GenerateRequest(model="g", prompt="x", max_tokens=4, constraint=Constraint(type="grammar", grammar="root ::= ("))
    with pytest.raises(ValueError, match="grammar"):
        model.generate(bad, lambda: False)
    assert model.scheduler().wait_idle(10)


# -- pushed delivery (the worker's fast path: the scheduler thread emits each chunk itself) ----------

def pushed(model: Any, req: GenerateRequest, cancelled: Callable[[], bool] = lambda: False,
           attach_after: int = 0) -> tuple[list[GenerationChunk], set[str]]:
    """Chunks delivered through ``push``, attached once ``attach_after`` chunks were already queued, and the
    names of the threads that emitted them."""
    import time

    stream = model.generate(req, cancelled)
    deadline = time.monotonic() + 60
    while stream.delivery.out.qsize() < attach_after and time.monotonic() < deadline:
        time.sleep(0.005)
    got: list[GenerationChunk] = []
    threads: set[str] = set()

    def emit(chunk: GenerationChunk) -> None:
        got.append(chunk)
        threads.add(threading.current_thread().name)

    stream.push(emit)
    stream.close()
    return got, threads


def test_pushed_chunks_equal_iterated_ones_and_come_from_the_scheduler_thread(model: Any) -> None:
    req = request(PROMPTS[3], 24)
    text, last = run(model, req)
    for attach_after in (0, 5):  # attached before the first token, and after some were queued: none lost or reordered
        chunks, threads = pushed(model, req, attach_after=attach_after)
        assert "".join(c.text for c in chunks) == text
        assert chunks[-1].finish_reason == last.finish_reason
        assert chunks[-1].usage.completion_tokens == last.usage.completion_tokens == 24
        assert sum(c.finish_reason is not None for c in chunks) == 1
    assert "llama-scheduler" in threads


def test_pushed_generation_stops_when_cancelled(model: Any) -> None:
    flag = threading.Event()
    count = 0

    def cancelled() -> bool:
        return flag.is_set()

    stream = model.generate(request(PROMPTS[3], 400), cancelled)
    got: list[GenerationChunk] = []

    def emit(chunk: GenerationChunk) -> None:
        nonlocal count
        got.append(chunk)
        count += 1
        if count == 3:
            flag.set()

    stream.push(emit)
    assert got[-1].finish_reason == "cancelled"
    assert sum(c.tokens for c in got) < 20


def test_a_failing_emit_ends_the_push_with_its_error_and_frees_the_slot(model: Any) -> None:
    def emit(chunk: GenerationChunk) -> None:
        raise ConnectionError("client gone")

    stream = model.generate(request(PROMPTS[3], 400), lambda: False)
    with pytest.raises(ConnectionError):
        stream.push(emit)
    stream.close()
    text, last = run(model, request(PROMPTS[1], 4))  # the model goes on serving
    assert last.finish_reason == "length" and text
