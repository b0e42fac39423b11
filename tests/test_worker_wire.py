"""The server-worker wire format (localai.runtime.worker.protocol)."""

from __future__ import annotations


def test_embedding_vectors_travel_as_float32_and_come_back_exactly() -> None:
    """The worker packs vectors as base64 float32; the server gets the same float32 values, shapes and counts."""
    from array import array

    from localai.runtime.worker import protocol
    from localai.types import EmbeddingResult

    vectors = [list(array("f", [0.1, -2.5, 3.25e-7])), list(array("f", [1.0])), []]
    packed = protocol.pack_result(EmbeddingResult(vectors=vectors, prompt_tokens=7))
    assert "vectors" not in packed and isinstance(packed["vectors_f32"], str)
    wire = protocol.decode(protocol.encode({"id": 1, "type": "result", "data": packed}))["data"]
    back = EmbeddingResult.model_validate(protocol.unpack_result(wire))
    assert back.vectors == vectors and back.prompt_tokens == 7
    assert protocol.unpack_result({"tokens": [1, 2]}) == {"tokens": [1, 2]}  # other results pass through


def test_message_lines_are_delivered_whole_and_in_order_however_the_bytes_arrive() -> None:
    """The server's reader hands on each line once complete: split across reads, several per read, or long."""
    import asyncio

    import pytest
    from localai.runtime.worker import protocol
    from localai.runtime.worker.client import MessageLines

    async def main() -> None:
        got: list[dict] = []
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lines = MessageLines(lambda line: got.append(protocol.decode(line)), closed)
        big = {"id": 3, "data": "x" * 100_000}
        wire = b"".join(protocol.encode(m) for m in ({"id": 1}, {"id": 2, "t": "é"}, big))
        for i in range(0, len(wire), 7):  # odd-sized reads cut lines and characters anywhere
            lines.data_received(wire[i:i + 7])
        lines.data_received(protocol.encode({"id": 4}) + protocol.encode({"id": 5}))
        assert got == [{"id": 1}, {"id": 2, "t": "é"}, big, {"id": 4}, {"id": 5}]
        assert not closed.done()
        lines.connection_lost(None)
        assert closed.done() and closed.result() is None

        # A garbled line, and a line past the limit, end the stream as broken.
        for feed in (b"{not json\n", b"y" * 64):
            closed = asyncio.get_running_loop().create_future()
            broken = MessageLines(lambda line: protocol.decode(line), closed)
            broken.LIMIT = 32
            broken.data_received(feed)
            with pytest.raises(ValueError):
                closed.result()

    asyncio.run(main())


def test_a_worker_whose_message_stream_is_closing_counts_as_dead_before_its_exit_is_read() -> None:
    """Between a worker's crash closing the socket and the reader task marking it dead, a request must see a dead
    worker (reload, or the one retry on a new worker), never write to the closed transport (uvloop raises
    RuntimeError there, which reached a client as a 500 in the SIGSEGV-under-load test)."""
    import pytest
    from localai.runtime.worker.client import WorkerDied, WorkerProcess

    class ClosedTransport:
        def is_closing(self) -> bool:
            return True

        def write(self, data: bytes) -> None:
            raise RuntimeError("unable to perform operation on <UnixTransport closed=True>; the handler is closed")

    class OpenButFailing(ClosedTransport):
        def is_closing(self) -> bool:
            return False

    worker = WorkerProcess("m", "fake")
    worker.proc = object()  # type: ignore[assignment]  # started, exit not yet seen
    worker._writer = ClosedTransport()  # type: ignore[assignment]
    assert not worker.alive and not worker.dead
    with pytest.raises(WorkerDied) as died:
        worker._send({"op": "generate", "id": 1})
    assert died.value.kind is None  # a crash, not an unload: the engine retries the request once on a new worker
    worker._writer = OpenButFailing()  # type: ignore[assignment]
    assert worker.alive
    with pytest.raises(WorkerDied):
        worker._send({"op": "generate", "id": 2})
