"""What one streamed token costs the API process, per API: CPU time of the server process alone (its model workers
excluded), from ``/proc``, while a client streams.

Run from the repository root::

    .venv/bin/python bench/stream_cost.py                   # the default model, 256 tokens x 6 requests per API
    .venv/bin/python bench/stream_cost.py --tokens 512 --requests 10

For each API (OpenAI completions and chat, Anthropic Messages, Open Responses) the same requests run streamed and
not streamed, one at a time, on the default model with ``ignore_eos: true`` (every request decodes exactly
``--tokens``, checked against the usage each API reports). Two figures per API: the server's CPU per token while
streaming, and the streamed minus the plain request's CPU per token, which is what streaming itself adds (SSE
framing, one write and one event-loop wake-up per token). The model's decoding runs in a worker process and is
not counted. A server on a 2-core machine shares those cores with the decoding worker, so each microsecond here is
taken from decode speed.

Last, the floor (``bench/relay_floor.py``): what relaying one line to a streamed client costs a process with
nothing of ours in it, a bare uvloop relay and a uvicorn ASGI app, at the streamed token rate measured above and
while the model decodes requests that are not streamed (so caches are as cold as under a real stream).
``--no-floor`` leaves it out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from localai.testing import GGUF_NAME, ServerProcess, default_gguf
from relay_floor import measure as relay_cost
from streaming import cpu_seconds

PROMPT = "Write a long story about a lighthouse keeper."


def request(api: str, tokens: int, stream: bool) -> tuple[str, dict]:
    if api == "completions":
        return "/v1/completions", {"model": "m", "prompt": PROMPT, "max_tokens": tokens, "stream": stream,
                                   **({"stream_options": {"include_usage": True}} if stream else {})}
    if api == "chat":
        return "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": PROMPT}],
                                        "max_tokens": tokens, "stream": stream,
                                        **({"stream_options": {"include_usage": True}} if stream else {})}
    if api == "anthropic":
        return "/v1/messages", {"model": "m", "max_tokens": tokens, "stream": stream,
                                "messages": [{"role": "user", "content": PROMPT}]}
    return "/v1/responses", {"model": "m", "input": PROMPT, "max_output_tokens": tokens, "stream": stream,
                             "store": False}


def output_tokens(api: str, body: str, stream: bool) -> int:
    """The completion token count the API itself reports (the last usage seen in a stream)."""
    docs = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")] if stream else [json.loads(body)]
    count = 0
    for doc in docs:
        usage = doc.get("usage") or (doc.get("message") or {}).get("usage") or (doc.get("response") or {}).get("usage")
        if usage:
            count = usage.get("completion_tokens") or usage.get("output_tokens") or count
    return count


def run(client: httpx.Client, url: str, pid: int, api: str, tokens: int, stream: bool) -> float:
    """Server CPU seconds for one request, which must decode exactly ``tokens``."""
    path, body = request(api, tokens, stream)
    before = cpu_seconds(pid)
    r = client.post(url + path, json=body)
    after = cpu_seconds(pid)
    r.raise_for_status()
    got = output_tokens(api, r.text, stream)
    if got != tokens:
        raise SystemExit(f"{api} (stream={stream}) decoded {got} tokens, expected {tokens}")
    return after - before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--requests", type=int, default=6, help="requests per API and mode (median taken)")
    ap.add_argument("--apis", nargs="+", default=["completions", "chat", "anthropic", "responses"])
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--no-floor", action="store_true", help="leave out the bare and ASGI relay floor")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp, "models")
        models.mkdir()
        (models / GGUF_NAME).symlink_to(default_gguf())
        (models / "m.yaml").write_text(f"name: m\nbackend: llama-cpp\ncontext_size: 2048\nthreads: {args.threads}\n"
                                       f"ignore_eos: true\nparameters:\n  model: {GGUF_NAME}\n  temperature: 0\n")
        with ServerProcess(models) as srv, httpx.Client(timeout=600) as client:
            pid = srv.proc.pid
            run(client, srv.url, pid, "completions", 8, True)  # load and warm up
            print(f"{args.tokens} tokens per request, {args.requests} requests per row, server CPU only "
                  f"(load average {os.getloadavg()[0]:.2f})")
            print(f"{'api':12} {'streamed us/token':>18} {'plain us/token':>15} {'streaming adds':>15}")
            streamed_wall = streamed_tokens = 0.0
            for api in args.apis:
                per: dict[bool, list[float]] = {True: [], False: []}
                for s in (True, False):
                    for _ in range(args.requests):
                        began = time.monotonic()
                        per[s].append(run(client, srv.url, pid, api, args.tokens, s) / args.tokens * 1e6)
                        if s:
                            streamed_wall += time.monotonic() - began
                            streamed_tokens += args.tokens
                streamed, plain = statistics.median(per[True]), statistics.median(per[False])
                print(f"{api:12} {streamed:18.1f} {plain:15.1f} {streamed - plain:15.1f}", flush=True)
            if not args.no_floor:
                floor(client, srv.url, streamed_wall / streamed_tokens, args.tokens)


def floor(client: httpx.Client, url: str, interval: float, tokens: int) -> None:
    """The relay floor at ``interval`` seconds per token, the model decoding plain requests meanwhile."""
    stop = threading.Event()

    def decode() -> None:
        path, body = request("completions", tokens, False)
        while not stop.is_set():
            client.post(url + path, json=body).raise_for_status()

    load = threading.Thread(target=decode, daemon=True)
    load.start()
    try:
        time.sleep(1)
        costs = {kind: relay_cost(kind, interval, 300) for kind in ("bare", "asgi")}
    finally:
        stop.set()
        load.join()
    print(f"floor at {1 / interval:.0f} tokens/s, the model decoding meanwhile: a bare uvloop relay "
          f"{costs['bare']:.1f} us/token, a uvicorn ASGI relay {costs['asgi']:.1f} us/token (bench/relay_floor.py)")


if __name__ == "__main__":
    main()
