"""The transformers backend against transformers itself, in the same session: a baseline engine process and our
server stay up side by side and take turns, one timed run each per round (medians and ratios printed, with every
round's figures).

Run from the repository root with the server's Python, the engine's Python given::

    LOCALAI_BACKENDS_PATH=... .venv/bin/python bench/transformers_bench.py    # or LOCALAI_PYTHON_TRANSFORMERS=...
    ... bench/transformers_bench.py --tokens 64 --rounds 3 --batches 5

* decode: one client streams ``/v1/completions`` from Gemma 3 270M (the HF folder written from the PyPI GGUF,
  greedy, EOS banned so every request decodes exactly ``--tokens``), against ``model.generate()`` in process
  on the same folder with the same token count. Ratio = HTTP tok/s / in-process tok/s (goal >= 0.95).
* embeddings: ``/v1/embeddings`` with batches of 64 short sentences on all-MiniLM-L6-v2 (SentenceTransformer type),
  against ``SentenceTransformer.encode`` in process. Ratio = HTTP sentences/s / in-process (goal >= 0.9).
* concurrency: ``--clients`` streams at once (the model's default ``parallel``: they share one batch) against one
  client through HTTP (goal >= 3), and against transformers' own continuous batching in process
  (``model.generate_batch`` with the same prompts and token count, greedy; the ceiling ``transformers serve
  --continuous-batching`` runs under, without its HTTP). Ratio = our aggregate tok/s / the baseline's.
* ``transformers serve`` (``--serve``): 1 and ``--clients`` streams against ``transformers serve FOLDER
  --continuous-batching`` (float32, CPU) on the same folder, prompts and token counts, the two servers side by side
  and their rounds alternating. Ratio = our aggregate tok/s / theirs (goal >= 1.0 at 8 clients).
* GGUF load (``--gguf-load``): the time to the first answer from a ``.gguf`` served by transformers, the first
  load (dequantize, then cache the checkpoint; an empty cache folder of its own) against a reload (read the cache).
* OpenVINO (``--openvino-python``, the ``openvino-transformers`` environment's Python): the same Gemma folder as
  ``type: OVModelForCausalLM`` (exported to IR at load) and MiniLM as ``OVModelForFeatureExtraction``, through
  HTTP, against the plain types above. Ratio = OpenVINO / plain.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from localai.testing import ServerProcess, backend_python, free_port, gemma_hf_folder, minilm_folder
from streaming import alternate, file_text, streamed_tokens_per_second, wait_healthy

EOS_BIAS = {"1": -100, "106": -100}  # Gemma's <eos> and <end_of_turn>
PROMPT = "Once upon a time, in a land far away,"
SENTENCES = [f"Sentence number {i} is about {w}." for i, w in enumerate(
    ["cats", "the weather", "stock markets", "football", "cooking pasta", "quantum physics", "old castles", "rivers"] * 8)]

# The in-process baseline: one long-lived engine process answering one timed run per line on stdin, so its
# rounds alternate with ours and a shared machine's drift over minutes falls on both sides alike.
IN_PROCESS = r"""
import json, sys, time, torch
args = json.loads(sys.argv[1])
if args["folder"]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    tok = AutoTokenizer.from_pretrained(args["folder"])
    model = AutoModelForCausalLM.from_pretrained(args["folder"], dtype=torch.float32).eval()
    ids = tok(args["prompt"], return_tensors="pt")
    bad = [[int(t)] for t in args["eos"]]
    config = GenerationConfig(max_new_tokens=args["tokens"], do_sample=False, eos_token_id=[], pad_token_id=0)
if args["minilm"]:
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(args["minilm"], device="cpu")


def decode():
    gen = model.generate(**ids, max_new_tokens=args["tokens"], do_sample=False, bad_words_ids=bad)
    assert gen.shape[1] - ids["input_ids"].shape[1] == args["tokens"]
    return args["tokens"]


def batch():  # transformers' continuous batching: every client's prompt in one generate_batch call
    done = model.generate_batch(inputs=[ids["input_ids"][0].tolist()] * args["clients"], generation_config=config,
                                progress_bar=False)
    made = sum(len(r.generated_tokens) for r in done.values())
    assert made == args["clients"] * args["tokens"], made
    return made


def embed():
    st.encode(args["sentences"], batch_size=64)
    return len(args["sentences"])


ops = {"decode": decode, "batch": batch, "embed": embed}
print("READY", flush=True)
for line in sys.stdin:
    fn = ops[line.strip()]
    t = time.perf_counter()
    n = fn()
    print(n / (time.perf_counter() - t), flush=True)
"""


class Engine:
    """The baseline engine process: ``run(op)`` times one run of ``decode``, ``batch`` or ``embed`` in it."""

    def __init__(self, python: str, **args: object) -> None:
        self.proc = subprocess.Popen([python, "-c", IN_PROCESS, json.dumps(args)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "READY":  # type: ignore[union-attr]
            raise SystemExit("the in-process baseline failed to start (its error is above)")
        self.warm: set[str] = set()

    def run(self, op: str) -> float:
        if op not in self.warm:  # the first run of each kind warms up
            self.warm.add(op)
            self.run(op)
        self.proc.stdin.write(op + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise SystemExit("the in-process baseline failed (its error is above)")
        return float(line)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def stream_tokens(url: str, tokens: int, model: str = "gemma") -> float:
    return streamed_tokens_per_second(url, model, PROMPT, tokens, EOS_BIAS)


def concurrent(url: str, clients: int, tokens: int, model: str = "gemma") -> float:
    t = time.perf_counter()
    threads = [threading.Thread(target=stream_tokens, args=(url, tokens, model)) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return clients * tokens / (time.perf_counter() - t)


@contextlib.contextmanager
def transformers_serve(python: str, folder: Path) -> Iterator[str]:
    """``transformers serve FOLDER --continuous-batching`` (float32, CPU) on a free loopback port; yields its URL.
    Its server needs the ``openai`` package, which our engine environment does not install: this Python's copy
    (and what it imports) goes on its path from a throw-away folder of links."""
    import importlib.util

    with tempfile.TemporaryDirectory() as extra, tempfile.TemporaryFile() as log:
        for name in ("openai", "jiter", "distro", "sniffio"):  # the SDK and what it imports, where installed
            spec = importlib.util.find_spec(name)
            if spec is None or not spec.origin:
                if name == "openai":
                    raise SystemExit("--serve: this Python lacks the openai package (pip install openai)")
                continue
            origin = Path(spec.origin)
            Path(extra, name if spec.submodule_search_locations else origin.name).symlink_to(
                origin.parent if spec.submodule_search_locations else origin)
        port = free_port()
        env = {**os.environ, "PYTHONPATH": extra, "HF_HUB_OFFLINE": "1"}
        cmd = [python, "-m", "transformers.cli.transformers", "serve", str(folder), "--continuous-batching",
               "--dtype", "float32", "--device", "cpu", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(proc, url, "transformers serve", 300, log=lambda: file_text(log))
            yield url
        finally:
            proc.kill()
            proc.wait()


def embed_http(url: str, batches: int, model: str = "minilm") -> list[float]:
    runs = []
    with httpx.Client(timeout=900) as client:
        client.post(url + "/v1/embeddings", json={"model": model, "input": SENTENCES}).raise_for_status()
        for _ in range(batches):
            t = time.perf_counter()
            r = client.post(url + "/v1/embeddings", json={"model": model, "input": SENTENCES})
            r.raise_for_status()
            runs.append(len(SENTENCES) / (time.perf_counter() - t))
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=backend_python("transformers")[0],
                    help="the engine's Python (default: LOCALAI_PYTHON_TRANSFORMERS or the installed backend environment)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--skip", choices=("decode", "embeddings"), action="append", default=[])
    ap.add_argument("--gguf-load", action="store_true", help="also time a .gguf's first (converting) and cached load")
    ap.add_argument("--openvino-python", help="the openvino-transformers environment's Python: also compare OpenVINO")
    ap.add_argument("--serve", action="store_true",
                    help="also compare 1 and --clients streams against `transformers serve --continuous-batching` "
                         "on the same folder (float32, CPU), the two servers up side by side, rounds alternating")
    a = ap.parse_args()
    if not a.python:
        raise SystemExit(backend_python("transformers")[1])
    if "decode" not in a.skip:
        print("the HF folder from the GGUF (written once) ...", flush=True)
    folder = gemma_hf_folder(a.python) if "decode" not in a.skip else None

    minilm = str(minilm_folder())

    engine = Engine(a.python, folder=None if "decode" in a.skip else str(folder), prompt=PROMPT, tokens=a.tokens,
                    eos=[int(k) for k in EOS_BIAS], clients=a.clients,
                    minilm=None if "embeddings" in a.skip else minilm, sentences=SENTENCES)
    plain: dict[str, float] = {}

    def report(what: str, unit: str, theirs: list[float], ours: list[float], base: str, mine: str) -> float:
        t, o = statistics.median(theirs), statistics.median(ours)
        print(f"{what}: {base} {t:.2f} {unit}, {mine} {o:.2f} {unit}, ratio {o / t:.3f} "
              f"(rounds: {', '.join(f'{x:.1f}' for x in theirs)} | {', '.join(f'{x:.1f}' for x in ours)})")
        return o

    try:
        with tempfile.TemporaryDirectory() as tmp:
            models = Path(tmp, "models")
            models.mkdir()
            if folder is not None:
                (models / "gemma-hf").symlink_to(folder)
            (models / "minilm").symlink_to(minilm)
            (models / "gemma.yaml").write_text("name: gemma\nbackend: transformers\ncontext_size: 2048\n"
                                               "parameters:\n  model: gemma-hf\n")
            (models / "minilm.yaml").write_text("name: minilm\nbackend: sentencetransformers\nembeddings: true\n"
                                                "parameters:\n  model: minilm\n")
            with ServerProcess(models, env={"LOCALAI_PYTHON_TRANSFORMERS": a.python, "HF_HUB_OFFLINE": "1"}) as srv:
                if "decode" not in a.skip:
                    stream_tokens(srv.url, 4)  # load and warm up
                    theirs, ours = alternate(a.rounds, lambda: engine.run("decode"),
                                             lambda: stream_tokens(srv.url, a.tokens))
                    plain["decode"] = report(f"decode, {a.tokens} tokens", "tok/s", theirs, ours,
                                                   "in-process generate()", "HTTP stream")
                    ones, many = alternate(a.rounds, lambda: stream_tokens(srv.url, a.tokens),
                                           lambda: concurrent(srv.url, a.clients, a.tokens))
                    report(f"concurrency, {a.clients} clients", "tok/s", ones, many, "1 client",
                           f"{a.clients} clients' aggregate")
                    if a.clients > 1:
                        theirs, ours = alternate(a.rounds, lambda: engine.run("batch"),
                                                 lambda: concurrent(srv.url, a.clients, a.tokens))
                        report(f"concurrency, {a.clients} clients", "tok/s", theirs, ours,
                               "transformers' continuous batching in process (generate_batch)", "our aggregate")
                    if a.serve and folder is not None:
                        serve_rounds(a, srv.url, folder)
                if "embeddings" not in a.skip:
                    embed_http(srv.url, 1)  # load and warm up
                    theirs, ours = alternate(a.batches, lambda: engine.run("embed"),
                                             lambda: embed_http(srv.url, 1)[0])
                    plain["embed"] = report(f"embeddings, batch {len(SENTENCES)}", "sentences/s", theirs, ours,
                                            "in-process encode", "HTTP")
    finally:
        engine.close()

    if a.gguf_load:
        gguf_load(a.python)
    if a.openvino_python:
        openvino(a, folder, minilm, plain)


def serve_rounds(a: argparse.Namespace, ours_url: str, folder: Path) -> None:
    """Ours against ``transformers serve --continuous-batching``: the engine process above is idle meanwhile."""
    with transformers_serve(a.python, folder) as url:
        model = str(folder)
        stream_tokens(url, 4, model)  # warm up
        concurrent(url, a.clients, 4, model)
        for clients in sorted({1, a.clients}):
            theirs, ours = alternate(a.rounds, lambda: concurrent(url, clients, a.tokens, model),
                                     lambda: concurrent(ours_url, clients, a.tokens))
            t, o = statistics.median(theirs), statistics.median(ours)
            print(f"vs transformers serve --continuous-batching, {clients} streamed client(s), {a.tokens} tokens each: "
                  f"theirs {t:.2f} tok/s, ours {o:.2f} tok/s, ratio {o / t:.3f} "
                  f"(rounds: {', '.join(f'{x:.1f}' for x in theirs)} | {', '.join(f'{x:.1f}' for x in ours)})", flush=True)


def gguf_load(python: str) -> None:
    """Seconds from a request to its answer when the model must load: converting the GGUF, then from the cache."""
    from localai.testing import default_gguf

    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp, "models")
        models.mkdir()
        (models / "gemma.gguf").symlink_to(default_gguf())
        (models / "gemma.yaml").write_text("name: gemma\nbackend: transformers\ntype: AutoModelForCausalLM\n"
                                           "context_size: 2048\nparameters:\n  model: gemma.gguf\n")
        env = {"LOCALAI_PYTHON_TRANSFORMERS": python, "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(Path(tmp, "cache"))}
        with ServerProcess(models, env=env) as srv:
            times = []
            for _ in range(2):
                t = time.perf_counter()
                stream_tokens(srv.url, 4)
                times.append(time.perf_counter() - t)
                httpx.post(srv.url + "/backend/shutdown", json={"model": "gemma"}, timeout=60).raise_for_status()
        print(f"gguf load: first answer {times[0]:.1f} s (dequantize and cache), after a reload {times[1]:.1f} s "
              f"(cached checkpoint), ratio {times[0] / times[1]:.1f}x")


def openvino(a: argparse.Namespace, folder: Path | None, minilm: str, plain: dict[str, float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp, "models")
        models.mkdir()
        (models / "minilm").symlink_to(minilm)
        if folder is not None:
            # A copy, so the IR exported at load does not land in the shared test folder.
            import shutil

            shutil.copytree(folder, models / "gemma-hf")
        (models / "gemma.yaml").write_text("name: gemma\nbackend: transformers\ntype: OVModelForCausalLM\n"
                                           "context_size: 2048\nparameters:\n  model: gemma-hf\n")
        (models / "minilm-ov.yaml").write_text("name: minilm-ov\nbackend: transformers\ntype: OVModelForFeatureExtraction\n"
                                               "embeddings: true\nparameters:\n  model: minilm\n")
        with ServerProcess(models, env={"LOCALAI_PYTHON_TRANSFORMERS": a.openvino_python, "HF_HUB_OFFLINE": "1"}) as srv:
            if "decode" not in a.skip:
                t = time.perf_counter()
                stream_tokens(srv.url, 4)  # export to IR, compile, warm up
                print(f"OpenVINO: first request (IR export + compile) {time.perf_counter() - t:.1f} s", flush=True)
                http = statistics.median([stream_tokens(srv.url, a.tokens) for _ in range(a.rounds)])
                print(f"OpenVINO decode, {a.tokens} tokens: HTTP stream {http:.2f} tok/s vs plain transformers "
                      f"{plain['decode']:.2f} tok/s, ratio {http / plain['decode']:.3f}")
            if "embeddings" not in a.skip:
                http = statistics.median(embed_http(srv.url, a.batches, "minilm-ov"))
                print(f"OpenVINO embeddings, batch {len(SENTENCES)}: HTTP {http:.1f} sentences/s vs SentenceTransformer "
                      f"{plain['embed']:.1f} sentences/s, ratio {http / plain['embed']:.3f}")


if __name__ == "__main__":
    main()
