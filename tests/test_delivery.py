"""localai.delivery: a decode thread's chunks reach the worker in order, whether it iterates or has them pushed,
and a consumer that leaves or fails is seen by the decode thread."""

from __future__ import annotations

import threading

import pytest
from localai.delivery import ChunkStream, Delivery
from localai.types import GenerationChunk


def chunks(n: int) -> list[GenerationChunk]:
    return [GenerationChunk(text=f"t{i}") for i in range(n - 1)] + [GenerationChunk(text="end", finish_reason="stop")]


def produce(d: Delivery, items: list, started: threading.Event | None = None, gate: threading.Event | None = None,
            after: int = 0) -> threading.Thread:
    """A decode thread delivering ``items``; it waits at ``gate`` after the first ``after`` of them."""
    def run() -> None:
        for i, item in enumerate(items):
            if gate is not None and i == after:
                gate.wait(10)
            if d.closed:
                return
            d.deliver(item)

    th = threading.Thread(target=run, name="decode")
    th.start()
    return th


def test_iterated_chunks_arrive_in_order_and_stop_at_the_finish() -> None:
    d = Delivery()
    items = chunks(20)
    th = produce(d, items)
    got = list(ChunkStream(d, lambda: None))
    th.join()
    assert got == items


@pytest.mark.parametrize("after", [0, 7])
def test_pushed_chunks_keep_order_across_the_attach_and_come_from_the_decode_thread(after: int) -> None:
    d = Delivery()
    items = chunks(20)
    gate = threading.Event()
    th = produce(d, items, gate=gate, after=after)
    while d.out.qsize() < after:
        pass  # the first ``after`` chunks are queued before the consumer attaches
    got, threads = [], []

    def emit(chunk: GenerationChunk) -> None:
        got.append(chunk)
        threads.append(threading.current_thread().name)

    def open_gate() -> None:  # the decode thread goes on once the consumer has attached
        while d.emit is None:
            pass
        gate.set()

    threading.Thread(target=open_gate).start()
    ChunkStream(d, lambda: None).push(emit)
    th.join()
    assert got == items
    assert set(threads[after:]) == {"decode"}  # once attached, the decode thread itself emits


def test_an_emit_that_fails_ends_the_push_with_its_error_and_tells_the_decode_thread() -> None:
    d = Delivery()
    gate = threading.Event()
    th = produce(d, chunks(50), gate=gate, after=1)
    while d.out.qsize() < 1:
        pass

    def emit(chunk: GenerationChunk) -> None:
        raise BrokenPipeError("the server went away")

    with pytest.raises(BrokenPipeError):
        ChunkStream(d, lambda: None).push(emit)
    assert d.closed  # the decode thread drops the generation at its next step
    gate.set()
    th.join(5)
    assert not th.is_alive() and d.out.empty()


def test_a_failure_reaches_either_consumer() -> None:
    for use_push in (False, True):
        d = Delivery()
        th = produce(d, [GenerationChunk(text="a"), RuntimeError("decode step failed")])
        stream = ChunkStream(d, lambda: None)
        with pytest.raises(RuntimeError, match="decode step failed"):
            if use_push:
                stream.push(lambda chunk: None)
            else:
                list(stream)
        th.join()


def test_closing_early_marks_the_generation_gone_and_wakes_the_decode_thread() -> None:
    d = Delivery()
    woken = []
    stream = ChunkStream(d, lambda: woken.append(True))
    d.deliver(GenerationChunk(text="first"))
    assert next(stream).text == "first"
    stream.close()
    assert d.closed and woken == [True]
    stream.close()  # once only
    assert woken == [True]
    with pytest.raises(StopIteration):
        next(stream)
