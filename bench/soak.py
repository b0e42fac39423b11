"""Soak: many short requests across the three APIs, streamed and not, with client disconnects in between.

Measures the API process (not the workers) after a warm-up and at the end: RSS growth, threads, open
file descriptors, worker processes and files in the temp folder. Run from the repository root::

    .venv/bin/python bench/soak.py                      # 10,000 requests on the fake backend (the issue's figure)
    .venv/bin/python bench/soak.py --requests 2000 --clients 8
    .venv/bin/python bench/soak.py --url http://127.0.0.1:8080 --pid 1234 --model gemma   # a running server

The fake backend (tests/fake_backend.py) keeps the engine out of the measurement: this measures the server
around it. ``tests/test_soak.py`` runs 300 requests of it in the default tier (CI) and 1,000 in the slow one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ANYIO_IDLE = 10  # seconds: anyio's WorkerThread.MAX_IDLE_TIME
ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def proc_stats(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    children = worker_threads = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children += 1
                    worker_threads += len(os.listdir(entry / "task"))
            except (OSError, ValueError, IndexError):
                pass
    return {
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "threads": int(fields["Threads"].strip()),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "workers": children,
        "worker_threads": worker_threads,
    }


def settled(pid: int, warm: dict[str, int], limit: float = 25.0,
            nudge: Callable[[], None] | None = None) -> tuple[dict[str, int], float]:
    """The API process's figures once pooled threads have gone idle, and how long that took.

    Thread pools grow with the peak concurrency, not with the request count, so a count taken after the last
    request can exceed the warm-up's by pooled threads. anyio's pool (sync endpoints, ``run_in_threadpool``) retires
    a thread idle for 10 s only when it next hands out work, never by itself: once 10 s have passed, ``nudge``
    sends one request through that pool, which retires the rest. A leak never goes: poll until the counts are back
    at the warm-up's, or ``limit`` seconds have passed and report what is left.
    """
    started = time.monotonic()
    nudged = False
    while True:
        now = proc_stats(pid)
        back = (now["threads"] <= warm["threads"] and now["worker_threads"] <= warm["worker_threads"]
                and now["fds"] <= warm["fds"] + 2)
        waited = time.monotonic() - started
        if back or waited >= limit:
            return now, round(waited, 1)
        if nudge is not None and not nudged and waited >= ANYIO_IDLE + 0.5:
            nudge()
            nudged = True
        time.sleep(0.5)


def one(client: httpx.Client, model: str, i: int) -> str:
    """Request number ``i``: one of six kinds; every tenth request, when streamed, hangs up after the first event."""
    kind = i % 6
    hang_up = i % 10 == 9
    words = " ".join(f"w{j}" for j in range(i % 7 + 1))
    if kind == 0:
        r = client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": words}], "max_tokens": 8})
    elif kind == 1:
        r = client.post("/v1/completions", json={"model": model, "prompt": words, "max_tokens": 8})
    elif kind == 2:
        r = client.post("/v1/messages", json={"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": words}]})
    elif kind == 3:
        r = client.post("/v1/responses", json={"model": model, "input": words, "max_output_tokens": 8, "store": False})
    else:
        path, body = [("/v1/chat/completions", {"model": model, "stream": True, "max_tokens": 8,
                                                "messages": [{"role": "user", "content": words}]}),
                      ("/v1/messages", {"model": model, "stream": True, "max_tokens": 8,
                                        "messages": [{"role": "user", "content": words}]})][kind - 4]
        if i % 12 in (4, 5):
            path, body = "/v1/responses", {"model": model, "input": words, "stream": True, "max_output_tokens": 8, "store": False}
        with client.stream("POST", path, json=body) as s:
            if s.status_code != 200:
                return f"{path} {s.status_code}"
            for line in s.iter_lines():
                if hang_up and line.startswith("data:"):
                    return "disconnected"
            return "ok"
    return "ok" if r.status_code == 200 else f"{r.request.url.path} {r.status_code}"


def run(url: str, pid: int, requests: int, clients: int, model: str, warmup: int, headers: dict[str, str] | None = None,
        tmpdir: Path | None = None) -> dict[str, Any]:
    """Soak the server at ``url`` (API process ``pid``); ``tmpdir`` is the server's TMPDIR, checked for leftovers."""
    tmp = Path(tmpdir or tempfile.gettempdir())
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    counter = iter(range(requests))
    snapshots: dict[str, dict[str, int]] = {}
    tmp_before = set(os.listdir(tmp))

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                if i == warmup:
                    snapshots["after_warmup"] = proc_stats(pid)
                try:
                    got = one(client, model, i)
                except httpx.HTTPError as exc:
                    got = f"client error {type(exc).__name__}"
                with lock:
                    outcomes[got] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    warm = snapshots.get("after_warmup") or proc_stats(pid)
    end, settle = settled(pid, warm, nudge=lambda: httpx.get(url + "/backends", headers=headers, timeout=30))
    new_tmp = sorted(set(os.listdir(tmp)) - tmp_before)
    return {
        "requests": requests,
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests_per_second": round(requests / elapsed, 1),
        "outcomes": dict(outcomes),
        "after_warmup": warm,
        "end": end,
        "settle_seconds": settle,
        "rss_growth_pct": round(100.0 * (end["rss_kib"] - warm["rss_kib"]) / warm["rss_kib"], 2),
        "new_temp_files": new_tmp,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=None, help="requests before the baseline snapshot (default: 10%%)")
    ap.add_argument("--url", help="soak a running server instead of starting one on the fake backend")
    ap.add_argument("--pid", type=int, help="the running server's pid (with --url)")
    ap.add_argument("--model", default="echo")
    args = ap.parse_args()
    warmup = args.warmup if args.warmup is not None else max(1, args.requests // 10)
    if args.url:
        if not args.pid:
            ap.error("--url needs --pid (the API process to measure)")
        result = run(args.url, args.pid, args.requests, args.clients, args.model, warmup)
    else:
        from localai.testing import ServerProcess

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "models"
            folder.mkdir()
            (folder / "echo.yaml").write_text("name: echo\nbackend: fake\n")
            server_tmp = Path(tmp) / "server-tmp"
            server_tmp.mkdir()
            env = {"LOCALAI_PLUGINS": "fake_backend", "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                   "LOCALAI_LOG_LEVEL": "WARNING", "TMPDIR": str(server_tmp)}
            with ServerProcess(folder, env=env) as srv:
                assert srv.proc is not None
                result = run(srv.url, srv.proc.pid, args.requests, args.clients, "echo", warmup, tmpdir=server_tmp)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
