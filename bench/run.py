"""Throughput and time to first token: localai (parallel 1 and 4) against raw llama-cpp-python, its server, and
llama.cpp's own C++ ``llama-server`` built from the same vendored llama.cpp (bench/build_llama_server.sh).

Run from the repository root::

    .venv/bin/python bench/run.py                 # 64 greedy tokens per request, 1 client and 8 clients
    .venv/bin/python bench/run.py --clients 1 4 8 16 --tokens 128 --rounds 3
    .venv/bin/python bench/run.py --paired 5      # alternating pairs, median ratios (robust on a noisy machine)

Every target serves the same GGUF (the default Gemma 3 270M unless ``--model``) with the same thread count,
one target at a time so they never share the CPU. Clients stream ``/v1/completions`` (greedy, EOS banned so
every request decodes exactly ``--tokens`` tokens) and measure time to first token and aggregate tokens/s, the
tokens taken from each stream's ``usage``. Every target gets the same prompt schedule (each request a prompt no
target has seen, see ``schedule``) and bans end tokens the same way (``RawEngine``).
llama-cpp-python's own server needs ``starlette-context`` and ``pydantic-settings``: the script builds a
venv for it under /tmp (``--baseline-venv``) that sees the project's llama-cpp-python, never touching .venv.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from localai.testing import GGUF_NAME, ServerProcess, default_gguf, free_port, write_models
from streaming import wait_healthy

PROMPTS = [
    "Once upon a time, in a land far away,",
    "The history of the Roman Empire begins",
    "Here is a recipe for a chocolate cake:",
    "def quicksort(items):",
    "The three laws of thermodynamics are",
    "Dear team, I am writing to let you know",
    "In the year 2050, cities will",
    "A short guide to planting tomatoes:",
]
EOG_BIAS = {"1": -100, "106": -100}  # Gemma's <eos> and <end_of_turn>: every request runs its full length
WARM_UP = "Warm-up: the quick brown fox"
_SERIAL = itertools.count()
FILLER = "the lighthouse keeper climbed the stairs and lit the lamp before the ships came in".split()
PROMPT_WORDS = 0  # --prompt-words: filler words after each prompt's serial number (prompt processing in the figure)
FOLLOW_UP = False  # --follow-up: each client's next prompt is its previous one plus a sentence (the prompt cache in play)
BACKEND = "llama-cpp"  # --backend
PARALLEL = (1, 4)  # --parallel: localai's slot counts


def schedule(clients: int, rounds: int) -> list[list[str]]:
    """Each client's prompts, every one new in this process (a serial number leads it): no target finds a whole
    earlier prompt in a slot or cache, and each shares the same few leading tokens with the one before."""
    filler = " ".join(FILLER[i % len(FILLER)] for i in range(PROMPT_WORDS))
    if FOLLOW_UP:  # a conversation per client: each prompt the one before plus a sentence of 16 words
        plans = []
        for c in range(clients):
            prompt = f"Note {next(_SERIAL)}. {filler + '. ' if filler else ''}{PROMPTS[c % len(PROMPTS)]}"
            plans.append([prompt := prompt + (" " + " ".join(FILLER[:16]) + "." if r else "") for r in range(rounds)])
        return plans
    return [[f"Note {next(_SERIAL)}. {filler + '. ' if filler else ''}{PROMPTS[c % len(PROMPTS)]}" for _ in range(rounds)]
            for c in range(clients)]


@dataclass
class Result:
    tokens: int = 0
    wall: float = 0.0
    ttft: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # process name -> CPU seconds spent during the run

    @property
    def tps(self) -> float:
        return self.tokens / self.wall if self.wall else 0.0

    @property
    def ttft_ms(self) -> float:
        return 1000 * statistics.median(self.ttft) if self.ttft else float("nan")


# -- raw llama-cpp-python, in process -------------------------------------------------------------

class RawEngine:
    """llama-cpp-python in this process, loaded once (the paired mode runs it many times), decoding like the server:
    ``Llama.eval`` keeping the longest prefix already evaluated (as its own ``generate`` does), and each token picked by
    the same numpy argmax with the same end-token bias the server applies to a request's ``logit_bias`` (banning them
    through ``generate``'s Python logits processor would cost raw a copy of 262k logits per token that ours never pays)."""

    def __init__(self, model: str, threads: int, tokens: int) -> None:
        import llama_cpp
        from localai_llama_cpp.sampling import Greedy

        # Flash attention on, as llama.cpp's auto and our default choose on CPU: the engine at its best.
        self.llm = llama_cpp.Llama(model, n_ctx=2048, n_threads=threads, n_threads_batch=threads, flash_attn=True,
                                   verbose=False)
        self.greedy = Greedy([(int(t), float(b)) for t, b in EOG_BIAS.items()])
        self.tokens = tokens
        self.one(WARM_UP)

    def logits(self):  # noqa: ANN201
        import llama_cpp
        import numpy as np

        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1), shape=(self.llm.n_vocab(),))

    def one(self, prompt: str) -> tuple[int, float]:
        toks = self.llm.tokenize(prompt.encode(), add_bos=True, special=True)
        start, first, n = time.perf_counter(), 0.0, 0
        keep = 0
        for a, b in zip(self.llm.input_ids[: self.llm.n_tokens], toks[:-1]):
            if a != b:
                break
            keep += 1
        self.llm.n_tokens = keep
        self.llm.eval(toks[keep:])
        while True:
            tok = self.greedy.pick(self.logits())
            n += 1
            if n == 1:
                first = time.perf_counter() - start
            if n >= self.tokens:
                break
            self.llm.eval([tok])
        return n, first

    def run(self, rounds: int) -> Result:
        """``rounds`` requests, as one HTTP client sends them: the same prompt schedule."""
        res = Result()
        start = time.perf_counter()
        for prompt in schedule(1, rounds)[0]:
            n, first = self.one(prompt)
            res.tokens += n
            res.ttft.append(first)
        res.wall = time.perf_counter() - start
        return res

    def close(self) -> None:
        self.llm.close()


def bench_raw(model: str, threads: int, tokens: int, rounds: int) -> Result:
    raw = RawEngine(model, threads, tokens)
    try:
        return raw.run(rounds)
    finally:
        raw.close()


# -- HTTP load --------------------------------------------------------------------------------------

def stream_once(client: httpx.Client, url: str, model: str, prompt: str, tokens: int) -> tuple[int, float]:
    """One streamed completion: (completion tokens as ``usage`` reports them, seconds to the first text).

    Tokens come from ``usage`` (``stream_options.include_usage``), not from counting chunks: the two servers' greedy
    texts differ (llama-server repacks its weights, which rounds differently), and a chunk count that skips
    whitespace-only pieces would credit whichever wrote fewer spaces and newlines.
    """
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True,
            "logit_bias": EOG_BIAS, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    first, chunks, usage = 0.0, 0, None
    with client.stream("POST", url + "/v1/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                usage = data["usage"].get("completion_tokens")
            choices = data.get("choices")
            if choices and choices[0].get("text"):
                chunks += 1
                if chunks == 1:
                    first = time.perf_counter() - start
    return (chunks if usage is None else usage), first  # no usage (an older server): one chunk per token


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (not its children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Child processes of ``pid`` (the server's model workers)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_clients(client: Callable[[int], None], clients: int) -> float:
    """``client(i)`` for each of ``clients`` at once, in threads; the wall-clock seconds until all are done."""
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def bench_http(url: str, model: str, clients: int, tokens: int, rounds: int, pid: int | None = None) -> Result:
    """``clients`` threads streaming ``rounds`` requests each; with ``pid``, also the CPU time that process and
    each of its children (localai's model workers) spent during the run."""
    http = httpx.Client(timeout=600)
    stream_once(http, url, model, WARM_UP, 8)  # warm-up (loads the model)
    plan = schedule(clients, rounds)
    res = Result()
    procs = {"server": pid, **{f"worker {c}": c for c in descendants(pid)}} if pid else {}
    before = {name: cpu_seconds(p) for name, p in procs.items()}
    lock = threading.Lock()

    def client(i: int) -> None:
        for prompt in plan[i]:
            # A connection per request: llama-server drops some kept-alive connections after a stream (httpx then
            # fails the next request on it), which would count against it here.
            try:
                with httpx.Client(timeout=600) as c:
                    n, first = stream_once(c, url, model, prompt, tokens)
            except httpx.HTTPError as exc:  # counted and reported: a failed request never just lowers tok/s
                with lock:
                    res.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                res.tokens += n
                res.ttft.append(first)

    res.wall = run_clients(client, clients)
    for name, p in procs.items():
        try:
            res.cpu[name] = cpu_seconds(p) - before[name]
        except OSError:
            pass
    http.close()
    return res


# -- servers ----------------------------------------------------------------------------------------

def baseline_python(venv: Path) -> str:
    """A venv for ``llama_cpp.server`` with its extra deps, seeing this interpreter's packages via a .pth file."""
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                          capture_output=True, text=True).stdout.strip()
    ours = next(p for p in sys.path if p.endswith("site-packages"))
    Path(site, "shared-localai.pth").write_text(ours + "\n")
    check = subprocess.run([str(py), "-c", "import starlette_context, pydantic_settings"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", "starlette-context", "pydantic-settings"], check=True)
    return str(py)


def start_llama_cpp_server(python: str, model: str, threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([python, "-m", "llama_cpp.server", "--model", model, "--n_ctx", "2048", "--n_threads",
                             str(threads), "--n_threads_batch", str(threads), "--host", "127.0.0.1", "--port", str(port),
                             "--verbose", "false", "--interrupt_requests", "false"], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(proc, url, "llama_cpp.server", 120, route="/v1/models", log=log.read_text)
    return proc, url


def llama_server_binary() -> str | None:
    """The cached C++ llama-server (built on first use, ~8 minutes); ``None`` with a reason printed if unavailable."""
    script = Path(__file__).with_name("build_llama_server.sh")
    print("building or finding llama.cpp's llama-server (bench/build_llama_server.sh) ...", flush=True)
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"SKIPPED llama.cpp llama-server baseline: the build failed:\n{r.stderr[-1500:]}", flush=True)
        return None
    return r.stdout.strip().splitlines()[-1]


def start_llama_server(binary: str, model: str, threads: int, slots: int, log: Path,
                       http_threads: int, extra: list[str] | None = None,
                       context: int | None = None) -> tuple[subprocess.Popen, str]:
    """llama-server with its own defaults, the same slots, context per slot and threads as localai's target
    (``extra``: more of its flags, e.g. ``--mmproj``; ``context``: the whole context, default 2048 per slot)."""
    port = free_port()
    env = {**os.environ, "LD_LIBRARY_PATH": str(Path(binary).parent)}
    # --threads-http: its default (slots + 2 HTTP threads) drops queued connections under more clients than that,
    # which would count against it here; ours takes any number of connections.
    proc = subprocess.Popen([binary, "-m", model, "-np", str(slots), "-c", str(context or 2048 * slots), "-t", str(threads),
                             "--threads-http", str(http_threads), "--host", "127.0.0.1", "--port", str(port), *(extra or [])],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(proc, url, "llama-server", 120, log=log.read_text)
    return proc, url


def localai_models(folder: Path, model: str, threads: int, options: list[str] | None = None,
                   baseline_options: list[str] | None = None) -> None:
    """``p1``/``p4`` (parallel 1 and 4, or ``--parallel``) on ``--backend`` with ``options``; with
    ``baseline_options``, ``b1``/``b4`` with those."""
    link = folder / GGUF_NAME
    yamls = {}
    sides = [("p", options or [])] + ([("b", baseline_options)] if baseline_options is not None else [])
    for prefix, extra in sides:
        for n in PARALLEL:
            slots = [f"parallel:{n}"] if n > 1 or BACKEND != "ik-llama-cpp" else []  # ik-llama-cpp has one sequence
            opts = ", ".join(repr(o) for o in [*slots, *extra])
            yamls[f"{prefix}{n}.yaml"] = (f"name: {prefix}{n}\nbackend: {BACKEND}\ncontext_size: {2048 * n}\n"
                                          f"threads: {threads}\noptions: [{opts}]\nparameters:\n  model: {link.name}\n"
                                          "  temperature: 0\n")
    write_models(folder, yamls, link_gguf=False)
    if not link.exists():
        link.symlink_to(model)


# -- paired mode ------------------------------------------------------------------------------------

def paired(args: argparse.Namespace, model: str, work: Path) -> None:
    """Each comparison as ``--paired`` alternating pairs (baseline, then ours, back to back), both sides loaded
    throughout: a shared or throttled CPU drifts by more than the differences measured here, and alternating makes
    the drift hit both sides alike. Prints the median ratio and its range."""
    localai_models(work / "models", model, args.threads, args.options, args.baseline_options)

    def report(label: str, pairs: list[tuple[Result, Result]], goal: float) -> None:
        ratios = sorted(b.tps / a.tps for a, b in pairs if a.tps)
        base = statistics.median(a.tps for a, _ in pairs)
        ours = statistics.median(b.tps for _, b in pairs)
        failed_base, failed_ours = sum(len(a.errors) for a, _ in pairs), sum(len(b.errors) for _, b in pairs)
        failed = f"; failed requests: {failed_base} baseline, {failed_ours} ours" if failed_base or failed_ours else ""
        for side, errors in (("baseline", [e for a, _ in pairs for e in a.errors]), ("ours", [e for _, b in pairs for e in b.errors])):
            if errors:
                failed += f"\n    first {side} failure: {errors[0][:300]}"
        print(f"{label}: median {statistics.median(ratios):.2f}x (range {ratios[0]:.2f}-{ratios[-1]:.2f}, "
              f"{len(ratios)} pairs; {ours:.1f} vs {base:.1f} tok/s; goal >= {goal}){failed}", flush=True)

    if args.baseline_options is not None:  # ours against ours with other options, nothing else
        with ServerProcess(work / "models") as srv:
            for n in PARALLEL:
                for c in args.clients:
                    report(f"localai {BACKEND} parallel {n}, {c:2d} client(s): options {args.options} vs {args.baseline_options}",
                           [(bench_http(srv.url, f"b{n}", c, args.tokens, args.rounds),
                             bench_http(srv.url, f"p{n}", c, args.tokens, args.rounds)) for _ in range(args.paired)], 0.97)
        return
    binary = None if args.skip_llama_server else llama_server_binary()
    with ServerProcess(work / "models") as srv:
        raw = RawEngine(model, args.threads, args.tokens)
        try:
            report("localai parallel 1, 1 client vs raw llama-cpp-python in process",
                   [(raw.run(args.rounds), bench_http(srv.url, "p1", 1, args.tokens, args.rounds))
                    for _ in range(args.paired)], 0.97)
        finally:
            raw.close()
        if not binary:
            return
        for n in (1, 4):
            proc, url = start_llama_server(binary, model, args.threads, n, work / f"llama-server-{n}.log",
                                           max(args.clients) + 4)
            try:
                for c in args.clients:
                    report(f"localai parallel {n} vs llama-server -np {n}, {c:2d} client(s)",
                           [(bench_http(url, "x", c, args.tokens, args.rounds),
                             bench_http(srv.url, f"p{n}", c, args.tokens, args.rounds)) for _ in range(args.paired)], 1.0)
            finally:
                proc.terminate()
                proc.wait(30)


# -- report -----------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="GGUF path (default: Gemma 3 270M from localai.testing)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--rounds", type=int, default=2, help="requests per client")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--baseline-venv", type=Path, default=Path(tempfile.gettempdir()) / "localai-bench-venv")
    ap.add_argument("--skip-llama-cpp-server", action="store_true", help="skip llama-cpp-python's Python server")
    ap.add_argument("--skip-llama-server", action="store_true", help="skip llama.cpp's C++ llama-server")
    ap.add_argument("--options", nargs="*", default=[],
                    help="extra backend options for localai's models (batch_invariant:false)")
    ap.add_argument("--baseline-options", nargs="*", default=None, metavar="OPTION",
                    help="with --paired: compare localai with --options against localai with these options instead of "
                         "the engines (batch_invariant:false)")
    ap.add_argument("--prompt-words", type=int, default=0,
                    help="filler words in every prompt, so prompt processing weighs in the figure (default 0)")
    ap.add_argument("--follow-up", action="store_true",
                    help="each client's next prompt is its previous one plus a sentence, so the prompt cache is in play")
    ap.add_argument("--backend", default="llama-cpp", choices=["llama-cpp", "ik-llama-cpp", "turboquant"],
                    help="localai's backend (other than llama-cpp: with --paired and --baseline-options only)")
    ap.add_argument("--parallel", type=int, nargs="+", default=[1, 4], help="localai's slot counts (default 1 4)")
    ap.add_argument("--paired", type=int, default=0, metavar="K",
                    help="instead of the table: K alternating baseline/ours pairs per comparison, median ratio")
    args = ap.parse_args()
    if args.baseline_options is not None and not args.paired:
        ap.error("--baseline-options needs --paired K")
    if (args.backend != "llama-cpp" or args.parallel != [1, 4]) and args.baseline_options is None:
        ap.error("--backend other than llama-cpp and --parallel need --paired K --baseline-options ... (ours against ours)")
    global PROMPT_WORDS, FOLLOW_UP, BACKEND, PARALLEL
    PROMPT_WORDS, FOLLOW_UP, BACKEND, PARALLEL = args.prompt_words, args.follow_up, args.backend, tuple(args.parallel)
    model = str(args.model or default_gguf())
    work = Path(tempfile.mkdtemp(prefix="localai-bench-"))
    print(f"model {Path(model).name}, {args.tokens} tokens/request, greedy, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.2f}" + (f", {args.paired} pairs per comparison" if args.paired else ""),
          flush=True)
    if args.paired:
        paired(args, model, work)
        return
    rows: dict[tuple[str, int], Result] = {}
    rows[("raw llama-cpp-python (in process)", 1)] = bench_raw(model, args.threads, args.tokens, args.rounds)

    if not args.skip_llama_cpp_server:
        proc, url = start_llama_cpp_server(baseline_python(args.baseline_venv), model, args.threads, work / "llama-cpp-server.log")
        try:
            for c in args.clients:
                rows[("llama-cpp-python server", c)] = bench_http(url, "x", c, args.tokens, args.rounds)
        finally:
            proc.terminate()
            proc.wait(30)

    binary = None if args.skip_llama_server else llama_server_binary()
    if binary:
        for n in (1, 4):
            proc, url = start_llama_server(binary, model, args.threads, n, work / f"llama-server-{n}.log", max(args.clients) + 4)
            try:
                for c in args.clients:
                    rows[(f"llama.cpp llama-server -np {n}", c)] = bench_http(url, "x", c, args.tokens, args.rounds, proc.pid)
            finally:
                proc.terminate()
                proc.wait(30)

    localai_models(work / "models", model, args.threads, args.options)
    with ServerProcess(work / "models") as srv:
        for n in (1, 4):
            for c in args.clients:
                rows[(f"localai parallel {n}", c)] = bench_http(srv.url, f"p{n}", c, args.tokens, args.rounds, srv.proc.pid)

    print(f"\n{'target':40} {'clients':>7} {'tok/s':>8} {'TTFT ms':>8} {'failed':>6}  CPU ms/token")
    for (name, c), r in rows.items():
        cpu = ", ".join(f"{k} {1000 * v / r.tokens:.2f}" for k, v in r.cpu.items()) if r.tokens else ""
        print(f"{name:40} {c:7d} {r.tps:8.1f} {r.ttft_ms:8.1f} {len(r.errors):6d}  {cpu}"
              + (f"  ({r.errors[0]})" if r.errors else ""))
    raw = rows[("raw llama-cpp-python (in process)", 1)]
    ours1 = rows.get(("localai parallel 1", 1))
    print()
    if ours1:
        print(f"localai parallel 1, 1 client vs raw: {ours1.tps / raw.tps:.2f}x tokens/s (goal >= 0.97), "
              f"TTFT {ours1.ttft_ms - raw.ttft_ms:+.1f} ms (goal <= +10)")
    many = max(args.clients)
    base = rows.get(("llama-cpp-python server", many))
    ours4 = rows.get(("localai parallel 4", many))
    if base and ours4:
        print(f"localai parallel 4, {many} clients vs llama-cpp-python server: {ours4.tps / base.tps:.2f}x tokens/s (goal >= 3)")
    for n in (1, 4):
        for c in args.clients:
            cpp, ours = rows.get((f"llama.cpp llama-server -np {n}", c)), rows.get((f"localai parallel {n}", c))
            if cpp and ours:
                print(f"localai parallel {n} vs llama-server -np {n}, {c:2d} client(s): {ours.tps / cpp.tps:.2f}x tokens/s "
                      f"(goal >= 1.0), TTFT {ours.ttft_ms:.0f} vs {cpp.ttft_ms:.0f} ms")
    if ours4 and raw:
        print(f"localai parallel 4, {many} clients vs raw single stream: {ours4.tps / raw.tps:.2f}x tokens/s")


if __name__ == "__main__":
    main()
