"""turboquant's KV cache types: decode speed and KV memory, our server against the fork's own ``llama-server``.

Both built from the same llama-cpp-turboquant source with the same CPU flags (ours by ``localai backends install
turboquant``, theirs by ``bench/build_llama_server.sh ARCHIVE``). Run from the repository root::

    LOCALAI_BACKENDS_PATH=~/.cache/localai/test-backends-<checkout hash> .venv/bin/python bench/turboquant_bench.py \\
        --source ../shared/vendor/llama-cpp-turboquant-69d8e4b.tar.gz --depths 4096 --memory-depths --state-depths 4096 32768

For each context depth and cache type (f16, q8_0, turbo4, turbo3, turbo2; keys and values alike, flash attention
on, one slot, the same threads): a prompt of ``depth`` tokens, then ``--tokens`` streamed tokens with the end tokens
banned, greedy, ``--rounds`` times (the prompt is cached after the first). Reported: decode tokens/s (tokens after
the first over the time after the first), its ratio to llama-server's (median of rounds), and the KV buffer
llama.cpp reports allocating on each side (``KV buffer size``, MiB). ``--memory-depths``: contexts measured for
their KV buffers only.

``--state-depths``: decode over a context of that many cells loaded from a state file instead of a prefill (a 32k
prompt through the fork's scalar CPU turbo kernels takes hours on 2 cores): our server evaluates a ``--seed``-token
prompt and writes its state (``prompt_cache_path``), ``kv_state.tile_state`` repeats its cells to the depth, then
llama-server restores the file into its slot (``--slot-save-path``, ``POST /slots/0?action=restore``) and ours
reads it (``prompt_cache_path``, ``prompt_cache_ro``); both get the file's tokens plus one as the prompt, so each
evaluates a token or two and decodes over the loaded cells. Give a depth of ``--depths`` too (4096) to compare the
two ways of filling the context: the decode speed should not depend on it.
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
from kv_state import tile_state  # noqa: E402
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


def decode_rate(url: str, model: str, prompt: str | list[int], tokens: int) -> float:
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


def model_yaml(cache_type: str, context: int, threads: int, extra: str = "") -> str:
    return (f"name: m\nbackend: turboquant\ncontext_size: {context}\nthreads: {threads}\nflash_attention: on\n"
            f"cache_type_k: {cache_type}\ncache_type_v: {cache_type}\noptions: ['fit_params:false']\n{extra}"
            f"parameters:\n  model: {GGUF_NAME}\n")


def seed_state(work: Path, cache_type: str, tokens: list[int], threads: int) -> Path:
    """Our server evaluates ``tokens`` (one slot) and writes their state through ``prompt_cache_path``."""
    folder = write_models(work / f"seed-{cache_type}", {"m.yaml": model_yaml(cache_type, len(tokens) + 64, threads,
                                                                              "prompt_cache_path: seed.bin\n")})
    with ServerProcess(folder) as ours:
        r = httpx.post(ours.url + "/v1/completions", json={"model": "m", "prompt": tokens, "max_tokens": 1}, timeout=3600)
        r.raise_for_status()
    return folder / "seed.bin"


def require_loaded_state(url: str, prompt: list[int], who: str) -> None:
    """One token on the loaded state: fails instead of waiting hours when a side evaluates the whole prompt again."""
    try:
        r = httpx.post(url + "/v1/completions", json={"model": "m", "prompt": prompt, "max_tokens": 1, "temperature": 0},
                       timeout=300)
    except httpx.TimeoutException:
        raise SystemExit(f"{who} took over 300 s for one token: it evaluated the prompt instead of the loaded state") from None
    r.raise_for_status()


def state_row(binary: str, model: str, work: Path, seed: Path, cache_type: str, depth: int,
              args: argparse.Namespace) -> tuple[list[float], list[float], float | None, float | None]:
    """Decode rates over ``depth`` cells loaded from ``seed`` tiled, ours and llama-server's, and their KV MiB."""
    slots = work / f"slots-{depth}-{cache_type}"
    slots.mkdir()
    tokens = tile_state(seed, slots / "tiled.bin", depth)
    prompt = [*tokens, tokens[1]]  # one more token than the file: each side evaluates its last token(s) only
    context = depth + args.tokens + 64
    log = work / f"fork-state-{depth}-{cache_type}.log"
    proc, url = start_llama_server(binary, model, args.threads, 1, log, 4, context=context,
                                   extra=["-fa", "on", "-ctk", cache_type, "-ctv", cache_type, "--slot-save-path", f"{slots}/"])
    folder = write_models(work / f"models-state-{depth}-{cache_type}",
                          {"m.yaml": model_yaml(cache_type, context, args.threads, "prompt_cache_path: tiled.bin\n"
                                                                                    "prompt_cache_ro: true\n")})
    (folder / "tiled.bin").symlink_to(slots / "tiled.bin")
    try:
        r = httpx.post(url + "/slots/0?action=restore", json={"filename": "tiled.bin"}, timeout=600)
        r.raise_for_status()
        if r.json().get("n_restored") != depth:
            raise SystemExit(f"llama-server restored {r.json()} instead of {depth} tokens")
        with ServerProcess(folder, env={"LOCALAI_ENGINE_VERBOSE": "1"}) as ours:
            require_loaded_state(url, prompt, "llama-server")
            require_loaded_state(ours.url, prompt, "our server")
            mine, theirs = [], []
            for _ in range(args.rounds):
                theirs.append(decode_rate(url, "m", prompt, args.tokens))
                mine.append(decode_rate(ours.url, "m", prompt, args.tokens))
            our_kv = kv_mib(ours.log(None))
    finally:
        proc.terminate()
        proc.wait()
    return mine, theirs, our_kv, kv_mib(log.read_text(errors="replace"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, help="the llama-cpp-turboquant source archive the fork's server is built from")
    ap.add_argument("--depths", type=int, nargs="*", default=[4096])
    ap.add_argument("--memory-depths", type=int, nargs="*", default=[32768],
                    help="contexts measured for KV memory only (a one-token request loads ours; no long prompt)")
    ap.add_argument("--state-depths", type=int, nargs="*", default=[],
                    help="contexts decoded over cells loaded from a state file (a --seed-token prefill, tiled)")
    ap.add_argument("--seed", type=int, default=1024, help="tokens of the real prefill --state-depths tile (divides them)")
    ap.add_argument("--types", nargs="+", default=list(TYPES))
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    binary = fork_server(args.source)
    model = str(default_gguf())
    work = Path(tempfile.mkdtemp(prefix="turboquant-bench-"))
    print(f"{'depth':>6} {'filled':>7} {'type':>7} {'ours tok/s':>10} {'fork tok/s':>10} {'ratio':>6} {'KV MiB ours':>11} "
          f"{'KV MiB fork':>11}")
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
            print(f"{depth:>6} {'-' if memory_only else 'prefill':>7} {cache_type:>7} {speed} {our_kv or float('nan'):>11.1f} "
                  f"{kv_mib(log.read_text(errors='replace')) or float('nan'):>11.1f}", flush=True)
    if args.state_depths:
        proc, url = start_llama_server(binary, model, args.threads, 1, work / "tokenizer.log", 4, context=args.seed + 64)
        try:
            text = filler(url, args.seed + 64)
            seed_tokens = httpx.post(url + "/tokenize", json={"content": text, "add_special": True}, timeout=120).json()["tokens"]
        finally:
            proc.terminate()
            proc.wait()
        seed_tokens = seed_tokens[: args.seed]
        for cache_type in args.types:
            seed = seed_state(work, cache_type, seed_tokens, args.threads)
            for depth in args.state_depths:
                mine, theirs, our_kv, their_kv = state_row(binary, model, work, seed, cache_type, depth, args)
                a, b = statistics.median(mine), statistics.median(theirs)
                print(f"{depth:>6} {'state':>7} {cache_type:>7} {a:>10.1f} {b:>10.1f} {a / b:>6.2f} {our_kv or float('nan'):>11.1f} "
                      f"{their_kv or float('nan'):>11.1f}", flush=True)


if __name__ == "__main__":
    main()
