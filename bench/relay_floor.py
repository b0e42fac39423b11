"""What relaying one streamed token costs a process at the least: the floor under ``bench/stream_cost.py``'s figures.

Our API server gets each token from the model's worker over a Unix socket and writes it to the client's TCP
connection. This measures the same hop with nothing of ours in it, in a process of its own, messages sent at a
fixed interval (a model's token rate), CPU from each thread's ``schedstat``:

- ``bare``: a uvloop protocol that writes each line it reads to the client's socket (no HTTP, no ASGI);
- ``asgi``: uvicorn with uvloop and httptools (as our server runs), one raw ASGI app streaming each line as an SSE
  frame from a queue the socket's protocol fills (no framework, no middleware, no parsing).

Run from the repository root (``bench/stream_cost.py`` runs it beside a decoding model, at the model's rate)::

    .venv/bin/python bench/relay_floor.py --interval 0.017 --messages 400
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import threading
import time

from streaming import cpu_seconds

LINE = b'{"id":1,"type":"chunk","data":{"text":" word","tokens":1}}\n'


def _bare(inbound: socket.socket, listener: socket.socket) -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(listener)
        out, _ = await loop.connect_accepted_socket(asyncio.Protocol, conn)
        done = loop.create_future()

        class Relay(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                out.write(b"data: " + data + b"\n")

            def connection_lost(self, exc: Exception | None) -> None:
                done.set_result(None)

        await loop.connect_accepted_socket(Relay, inbound)
        await done

    uvloop.run(main())


def _asgi(inbound: socket.socket, listener: socket.socket) -> None:
    import uvicorn

    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    class Lines(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            queue.put_nowait(data)

        def connection_lost(self, exc: Exception | None) -> None:
            queue.put_nowait(None)

    async def app(scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "lifespan":
            await receive()  # type: ignore[operator]
            await asyncio.get_running_loop().connect_accepted_socket(Lines, inbound)
            await send({"type": "lifespan.startup.complete"})  # type: ignore[operator]
            await receive()  # type: ignore[operator]
            await send({"type": "lifespan.shutdown.complete"})  # type: ignore[operator]
            return
        await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                    "headers": [(b"content-type", b"text/event-stream")]})
        while (line := await queue.get()) is not None:
            await send({"type": "http.response.body", "body": b"data: " + line + b"\n", "more_body": True})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on", log_level="warning")
    uvicorn.Server(config).run(sockets=[listener])


def _drain(client: socket.socket) -> None:
    """The client: reads whatever comes until the relay closes the connection."""
    try:
        while client.recv(65536):
            pass
    except OSError:
        pass


def measure(kind: str, interval: float, messages: int) -> float:
    """CPU microseconds per relayed message of a ``kind`` relay process."""
    feed, inbound = socket.socketpair()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    pid = os.fork()
    if pid == 0:
        feed.close()
        try:
            (_bare if kind == "bare" else _asgi)(inbound, listener)
        finally:
            os._exit(0)
    inbound.close()
    client = socket.create_connection(listener.getsockname())
    listener.close()
    if kind == "asgi":
        client.sendall(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
    reader = threading.Thread(target=_drain, args=(client,), daemon=True)
    reader.start()
    for _ in range(20):  # warm up: the first messages pay for imports and the connection
        feed.sendall(LINE)
        time.sleep(interval)
    before = cpu_seconds(pid)
    for _ in range(messages):
        feed.sendall(LINE)
        time.sleep(interval)
    after = cpu_seconds(pid)
    feed.close()
    os.kill(pid, 15)
    os.waitpid(pid, 0)
    reader.join(timeout=5)
    client.close()
    return (after - before) / messages * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interval", type=float, default=0.017, help="seconds between messages (a model's token rate)")
    ap.add_argument("--messages", type=int, default=400)
    args = ap.parse_args()
    for kind in ("bare", "asgi"):
        print(f"{kind:5} relay: {measure(kind, args.interval, args.messages):6.1f} us CPU per message", flush=True)


if __name__ == "__main__":
    main()
