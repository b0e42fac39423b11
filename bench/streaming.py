"""What the engine benchmarks share: one streamed ``/v1/completions`` request timed to its last token (any
OpenAI-compatible server: ours, ``vllm serve``), the wait for a baseline server to come up, rounds alternating
between two sides, and the CPU time of a server's process tree."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx


def file_text(f: IO[bytes]) -> str:
    """All a process wrote so far into the temporary file given as its output."""
    f.seek(0)
    return f.read().decode(errors="replace")


def wait_healthy(proc: subprocess.Popen, url: str, name: str, timeout: float, route: str = "/health",
                 log: Callable[[], str] = lambda: "") -> None:
    """Poll ``url + route`` until it answers 200. A process that exits first, or a timeout (the process is then
    killed), raises RuntimeError naming ``name`` with the end of its ``log()``."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log()[-3000:]}")
        try:
            if httpx.get(url + route, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{name} did not answer {route} in {timeout:.0f} s:\n{log()[-3000:]}")
        time.sleep(0.2)


def streamed_tokens_per_second(url: str, model: str, prompt: str, tokens: int, bias: dict[str, float]) -> float:
    """Decode ``tokens`` greedily (end tokens banned through ``bias``) and return tokens/s; the server's own usage
    count must say exactly ``tokens``."""
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True,
            "logit_bias": bias, "stream_options": {"include_usage": True}}
    t = time.perf_counter()
    got = 0
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=900) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data: {"):
                usage = json.loads(line[6:]).get("usage")
                if usage:
                    got = usage["completion_tokens"]
    dt = time.perf_counter() - t
    assert got == tokens, f"streamed {got} tokens, expected {tokens}"
    return tokens / dt


def alternate(rounds: int, theirs: Callable[[], float], ours: Callable[[], float]) -> tuple[list[float], list[float]]:
    """``rounds`` pairs, one run of each side per pair, in turn: a shared machine's drift falls on both alike."""
    a, b = [], []
    for _ in range(rounds):
        a.append(theirs())
        b.append(ours())
    return a, b


def cpu_seconds(pid: int) -> float:
    """CPU time of one process's threads (not its children), from each thread's ``schedstat`` (nanoseconds: the
    ``stat`` file's clock ticks are 10 ms, too coarse for a few hundred microseconds per token)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def process_tree(pid: int, depth: int = 0) -> list[tuple[int, int, str]]:
    """``(pid, depth, name)`` of a process and its descendants, from /proc (name: the kernel's ``comm``)."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        children = [int(p) for task in Path(f"/proc/{pid}/task").iterdir()
                    for p in (task / "children").read_text().split()]
    except OSError:
        return []
    return [(pid, depth, name), *(row for child in children for row in process_tree(child, depth + 1))]


def tree_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each process in ``pid``'s tree, labelled ``depth:name`` (0 is ``pid`` itself)."""
    out: dict[str, float] = {}
    for p, depth, name in process_tree(pid):
        label = f"{depth}:{name}"
        out[label] = out.get(label, 0.0) + cpu_seconds(p)
    return out
