"""turboquant's KV cache types: decode speed and KV memory, our server against the fork's own ``llama-server``.

Both built from the same llama-cpp-turboquant source with the same CPU flags (ours by ``localai backends install
turboquant``, theirs by ``bench/build_llama_server.sh ARCHIVE``). Run from the repository root::

    LOCALAI_BACKENDS_PATH=~/.cache/localai/test-backends-<checkout hash> .venv/bin/python bench/turboquant_bench.py \\
        --source ../shared/vendor/llama-cpp-turboquant-69d8e4b.tar.gz --depths 4096 --memory-depths 32768

For each context depth and cache type (f16, q8_0, turbo4, turbo3, turbo2; keys and values alike, flash attention
on, one slot, the same threads): a prompt of ``depth`` tokens, then ``--tokens`` streamed tokens with the end tokens
banned, greedy, ``--rounds`` times (the prompt is cached after the first). Reported: decode tokens/s (tokens after
the first over the time after the first), its ratio to llama-server's (median of rounds), and the KV buffer
llama.cpp reports allocating on each side (``KV buffer size``, MiB). ``--memory-depths``: contexts measured for
their KV buffers only (a 32k prompt through the fork's scalar CPU turbo kernels takes hours on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from localai.testing import GGUF_NAME, ServerProcess, default_gguf, write_models  # noqa: E402
from run import EOG_BIAS, start_llama_server  # noqa: E402

TYPES = ("f16", "q8_0", "turbo4", "turbo3", "turbo2")
KV_LINE = re.compile(r"KV buffer size\s*=\s*([\d.]+) MiB")


def fork_server(source: str) -> str:
    r = subprocess.run(["bash", str(Path(__file__).with_name("build_llama_server.sh")), source], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"building the fork's llama-server failed:\n{r.stderr[-2000:]}")
    return r.stdout.strip().splitlines()[-1]


def filler(url: str, depth: int) -> str:
    """A prompt of ``depth`` tokens (counted by the server's tokenizer; both sides share the GGUF's)."""
    words = [f"w{i % 97}" for i in range(depth)]
    text = " ".join(words)
    n = len(httpx.post(url + "/tokenize", json={"content": text}, timeout=120).json()["tokens"])
    while n > depth - 8:
        words = words[: int(len(words) * (depth - 8) / n)]
        text = " ".join(words)
        n = len(httpx.post(url + "/tokenize", json={"content": text}, timeout=120).json()["tokens"])
    return text


def decode_rate(url: str, model: str, prompt: str, tokens: int) -> float:
    """Tokens/s after the first token of one streamed completion."""
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True,
            "logit_bias": EOG_BIAS}
    stamps: list[float] = []
    with httpx.Client(timeout=3600) as c, c.stream("POST", url + "/v1/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data:") and '"text"' in line and line.strip() != "data: [DONE]":
                stamps.append(time.perf_counter())
    if len(stamps) < 2:
        raise RuntimeError(f"{url}: {len(stamps)} tokens streamed")
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def kv_mib(log: str) -> float | None:
    """The KV buffers of the last context the log constructs (ours builds the slots' context after freeing the
    first one ``Llama`` made; an interleaved SWA model has two caches, summed)."""
    last = log.rsplit("llama_context: constructing", 1)[-1]
    found = [float(m) for m in KV_LINE.findall(last)]
    return sum(found) if found else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, help="the llama-cpp-turboquant source archive the fork's server is built from")
    ap.add_argument("--depths", type=int, nargs="*", default=[4096])
    ap.add_argument("--memory-depths", type=int, nargs="*", default=[32768],
                    help="contexts measured for KV memory only (a one-token request loads ours; no long prompt)")
    ap.add_argument("--types", nargs="+", default=list(TYPES))
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    binary = fork_server(args.source)
    model = str(default_gguf())
    work = Path(tempfile.mkdtemp(prefix="turboquant-bench-"))
    print(f"{'depth':>6} {'type':>7} {'ours tok/s':>10} {'fork tok/s':>10} {'ratio':>6} {'KV MiB ours':>11} {'KV MiB fork':>11}")
    for depth in [*args.depths, *args.memory_depths]:
        memory_only = depth not in args.depths
        context = depth + args.tokens + 64
        for cache_type in args.types:
            log = work / f"fork-{depth}-{cache_type}.log"
            proc, url = start_llama_server(binary, model, args.threads, 1, log, 4, context=context,
                                           extra=["-fa", "on", "-ctk", cache_type, "-ctv", cache_type])
            folder = work / f"models-{depth}-{cache_type}"
            folder.mkdir()
            write_models(folder, {"m.yaml": f"name: m\nbackend: turboquant\ncontext_size: {context}\nthreads: {args.threads}\n"
                                            f"flash_attention: on\ncache_type_k: {cache_type}\ncache_type_v: {cache_type}\n"
                                            f"options: ['fit_params:false']\nparameters:\n  model: {GGUF_NAME}\n"})
            try:
                prompt = "Hello" if memory_only else filler(url, depth)
                with ServerProcess(folder, env={"LOCALAI_ENGINE_VERBOSE": "1"}) as ours:
                    mine, theirs = [], []
                    for _ in range(1 if memory_only else args.rounds):  # alternating: the same machine state for both
                        theirs.append(decode_rate(url, "m", prompt, 2 if memory_only else args.tokens))
                        mine.append(decode_rate(ours.url, "m", prompt, 2 if memory_only else args.tokens))
                    our_kv = kv_mib(ours.log(None))
            finally:
                proc.terminate()
                proc.wait()
            a, b = statistics.median(mine), statistics.median(theirs)
            speed = f"{'-':>10} {'-':>10} {'-':>6}" if memory_only else f"{a:>10.1f} {b:>10.1f} {a / b:>6.2f}"
            print(f"{depth:>6} {cache_type:>7} {speed} {our_kv or float('nan'):>11.1f} "
                  f"{kv_mib(log.read_text(errors='replace')) or float('nan'):>11.1f}", flush=True)


if __name__ == "__main__":
    main()
