"""Replicas: aggregate throughput of 2 replicas behind HAProxy against 1, and what a stored response costs on
PostgreSQL against SQLite.

Run from the repository root (PostgreSQL's server and HAProxy installed, as ``scripts/test.sh`` does)::

    .venv/bin/python bench/replicas_bench.py                  # both parts
    .venv/bin/python bench/replicas_bench.py --skip throughput

Throughput: the default model, streamed chat completions of ``--tokens`` tokens (end tokens banned, so every request
decodes exactly that many) from ``--clients`` concurrent clients for ``--requests`` requests, sent (a) to one replica
with all ``--threads`` threads and (b) through HAProxy to two replicas with half the threads each (``threads``
split, each replica on its own share of the cores). Same prompts and token counts on both sides; one warm-up
request per replica first. Printed: tokens per second of each and the ratio.

Store latency: the same server configuration on SQLite (the default) and on PostgreSQL (a throw-away cluster on
loopback), ``--stored`` Responses requests of one output token with ``store: true`` and as many with
``store: false``, one at a time; printed: p50 and p99 wall time of each, and the store's added cost (stored minus
not stored) per database.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from localai.testing import ServerProcess, write_models
from localai.testing.services import HAProxy, PostgresServer


def model_yaml(threads: int) -> dict[str, str]:
    return {"gemma.yaml": f"name: gemma\nbackend: llama-cpp\ncontext_size: 2048\nthreads: {threads}\nignore_eos: true\n"
                          "parameters:\n  model: gemma-3-270m-q4_k_m.gguf\n  temperature: 0\n"}


def warm(url: str) -> None:
    httpx.post(url + "/v1/completions", json={"model": "gemma", "prompt": "Hi", "max_tokens": 1}, timeout=300).raise_for_status()


def load(url: str, clients: int, requests: int, tokens: int) -> float:
    """Tokens per second over ``requests`` streamed chats from ``clients`` threads."""

    def one(i: int) -> int:
        body = {"model": "gemma", "max_tokens": tokens, "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": f"Tell story number {i % 8} about the sea."}]}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as r:
            r.raise_for_status()
            text = "".join(r.iter_text())
        assert text.rstrip().endswith("data: [DONE]")
        return tokens

    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(one, range(requests)))
    return total / (time.monotonic() - began)


def throughput(args: argparse.Namespace, root: Path) -> None:
    threads = args.threads
    one = write_models(root / "one", model_yaml(threads))
    with ServerProcess(one, data_path=root / "data-one") as srv:
        warm(srv.url)
        single = load(srv.url, args.clients, args.requests, args.tokens)
    two = write_models(root / "two", model_yaml(max(1, threads // 2)))
    replicas = []
    try:
        for name in ("a", "b"):
            replicas.append(ServerProcess(two, data_path=root / f"data-{name}").start())
        for srv in replicas:
            warm(srv.url)
        with HAProxy([f"127.0.0.1:{srv.port}" for srv in replicas]) as lb:
            double = load(lb.url, args.clients, args.requests, args.tokens)
    finally:
        for srv in replicas:
            srv.stop()
    print(f"throughput, {args.clients} clients, {args.requests} streamed chats of {args.tokens} tokens: 1 replica "
          f"({threads} threads) {single:.1f} tok/s; 2 replicas behind HAProxy ({max(1, threads // 2)} threads each) "
          f"{double:.1f} tok/s; ratio {double / single:.2f}", flush=True)


def latencies(url: str, n: int, store: bool) -> list[float]:
    out = []
    with httpx.Client(timeout=120) as c:
        for i in range(n):
            began = time.monotonic()
            r = c.post(url + "/v1/responses", json={"model": "gemma", "input": f"Count {i}", "max_output_tokens": 1,
                                                    "store": store})
            out.append(time.monotonic() - began)
            r.raise_for_status()
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1e3


def store_latency(args: argparse.Namespace, root: Path) -> None:
    models = write_models(root / "store-models", model_yaml(args.threads))
    rows = []
    with PostgresServer() as pg:
        for name, env in (("SQLite", {}), ("PostgreSQL", {"LOCALAI_DATABASE_URL": pg.url})):
            with ServerProcess(models, data_path=root / f"store-{name}", env=env) as srv:
                warm(srv.url)
                latencies(srv.url, 10, True)  # warm the store's connection and caches
                stored, plain = [], []
                for _ in range(max(1, args.stored // 10)):  # alternate in blocks so drift hits both alike
                    stored += latencies(srv.url, 10, True)
                    plain += latencies(srv.url, 10, False)
                rows.append((name, stored, plain))
    print(f"stored Responses request (1 output token), {len(rows[0][1])} each, ms:")
    print(f"{'database':12} {'stored p50':>11} {'stored p99':>11} {'not p50':>9} {'not p99':>9} {'adds p50':>9} {'adds p99':>9}")
    for name, stored, plain in rows:
        print(f"{name:12} {pct(stored, 50):11.2f} {pct(stored, 99):11.2f} {pct(plain, 50):9.2f} {pct(plain, 99):9.2f} "
              f"{pct(stored, 50) - pct(plain, 50):9.2f} {pct(stored, 99) - pct(plain, 99):9.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--stored", type=int, default=200, help="stored and unstored requests per database")
    ap.add_argument("--skip", nargs="*", default=[], choices=["throughput", "store"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "throughput" not in args.skip:
            throughput(args, root)
        if "store" not in args.skip:
            store_latency(args, root)


if __name__ == "__main__":
    main()
