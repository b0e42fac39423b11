"""The transformers backend against transformers itself, in the same session, one at a time.

Run from the repository root with the server's Python, the engine's Python given::

    LOCALAI_BACKENDS_PATH=... .venv/bin/python bench/transformers_bench.py    # or LOCALAI_PYTHON_TRANSFORMERS=...
    ... bench/transformers_bench.py --tokens 64 --rounds 3 --batches 5

* decode: one client streams ``/v1/completions`` from Gemma 3 270M (the HF folder written from the PyPI GGUF,
  greedy, EOS banned so every request decodes exactly ``--tokens``), against ``model.generate()`` in process
  on the same folder with the same token count. Ratio = HTTP tok/s / in-process tok/s (goal >= 0.95).
* embeddings: ``/v1/embeddings`` with batches of 64 short sentences on all-MiniLM-L6-v2 (SentenceTransformer type),
  against ``SentenceTransformer.encode`` in process. Ratio = HTTP sentences/s / in-process (goal >= 0.9).
* concurrency: ``--clients`` streams at once against one, through HTTP (requests are served one at a time).
* GGUF load (``--gguf-load``): the time to the first answer from a ``.gguf`` served by transformers, the first
  load (dequantize, then cache the checkpoint; an empty cache folder of its own) against a reload (read the cache).
* OpenVINO (``--openvino-python``, the ``openvino-transformers`` environment's Python): the same Gemma folder as
  ``type: OVModelForCausalLM`` (exported to IR at load) and MiniLM as ``OVModelForFeatureExtraction``, through
  HTTP, against the plain types above. Ratio = OpenVINO / plain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
from localai.testing import ServerProcess, backend_python, gemma_hf_folder, minilm_folder
from streaming import streamed_tokens_per_second

EOS_BIAS = {"1": -100, "106": -100}  # Gemma's <eos> and <end_of_turn>
PROMPT = "Once upon a time, in a land far away,"
SENTENCES = [f"Sentence number {i} is about {w}." for i, w in enumerate(
    ["cats", "the weather", "stock markets", "football", "cooking pasta", "quantum physics", "old castles", "rivers"] * 8)]

IN_PROCESS = r"""
import json, sys, time, torch
args = json.loads(sys.argv[1])
out = {}
if args["folder"]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(args["folder"])
    model = AutoModelForCausalLM.from_pretrained(args["folder"], dtype=torch.float32).eval()
    ids = tok(args["prompt"], return_tensors="pt")
    bad = [[int(t)] for t in args["eos"]]
    runs = []
    for i in range(args["rounds"] + 1):
        t = time.perf_counter()
        gen = model.generate(**ids, max_new_tokens=args["tokens"], do_sample=False, bad_words_ids=bad)
        dt = time.perf_counter() - t
        assert gen.shape[1] - ids["input_ids"].shape[1] == args["tokens"]
        if i:
            runs.append(args["tokens"] / dt)  # the first run warms up
    out["decode_tps"] = runs
if args["minilm"]:
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(args["minilm"], device="cpu")
    st.encode(args["sentences"])
    runs = []
    for _ in range(args["batches"]):
        t = time.perf_counter()
        st.encode(args["sentences"], batch_size=64)
        runs.append(len(args["sentences"]) / (time.perf_counter() - t))
    out["embed_sps"] = runs
print("RESULT " + json.dumps(out))
"""


def engine(python: str, **args: object) -> dict:
    proc = subprocess.run([python, "-c", IN_PROCESS, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"in-process baseline failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


def stream_tokens(url: str, tokens: int) -> float:
    return streamed_tokens_per_second(url, "gemma", PROMPT, tokens, EOS_BIAS)


def concurrent(url: str, clients: int, tokens: int) -> float:
    t = time.perf_counter()
    threads = [threading.Thread(target=stream_tokens, args=(url, tokens)) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return clients * tokens / (time.perf_counter() - t)


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
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--skip", choices=("decode", "embeddings"), action="append", default=[])
    ap.add_argument("--gguf-load", action="store_true", help="also time a .gguf's first (converting) and cached load")
    ap.add_argument("--openvino-python", help="the openvino-transformers environment's Python: also compare OpenVINO")
    a = ap.parse_args()
    if not a.python:
        raise SystemExit(backend_python("transformers")[1])
    if "decode" not in a.skip:
        print("the HF folder from the GGUF (written once) ...", flush=True)
    folder = gemma_hf_folder(a.python) if "decode" not in a.skip else None

    minilm = str(minilm_folder())

    base = engine(a.python, folder=None if "decode" in a.skip else str(folder), prompt=PROMPT, tokens=a.tokens,
                  rounds=a.rounds, eos=[int(k) for k in EOS_BIAS], minilm=None if "embeddings" in a.skip else minilm,
                  sentences=SENTENCES, batches=a.batches)
    plain: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp, "models")
        models.mkdir()
        if folder is not None:
            (models / "gemma-hf").symlink_to(folder)
        (models / "minilm").symlink_to(minilm)
        (models / "gemma.yaml").write_text("name: gemma\nbackend: transformers\ncontext_size: 2048\nparameters:\n  model: gemma-hf\n")
        (models / "minilm.yaml").write_text("name: minilm\nbackend: sentencetransformers\nembeddings: true\nparameters:\n  model: minilm\n")
        with ServerProcess(models, env={"LOCALAI_PYTHON_TRANSFORMERS": a.python, "HF_HUB_OFFLINE": "1"}) as srv:
            if "decode" not in a.skip:
                stream_tokens(srv.url, 4)  # load and warm up
                http = [stream_tokens(srv.url, a.tokens) for _ in range(a.rounds)]
                inproc = statistics.median(base["decode_tps"])
                plain["decode"] = statistics.median(http)
                print(f"decode, {a.tokens} tokens: in-process generate() {inproc:.2f} tok/s, HTTP stream "
                      f"{statistics.median(http):.2f} tok/s, ratio {statistics.median(http) / inproc:.3f}")
                many = concurrent(srv.url, a.clients, a.tokens)
                print(f"concurrency: {a.clients} clients {many:.2f} tok/s aggregate vs 1 client "
                      f"{statistics.median(http):.2f} tok/s, ratio {many / statistics.median(http):.3f}")
            if "embeddings" not in a.skip:
                http = embed_http(srv.url, a.batches)
                inproc = statistics.median(base["embed_sps"])
                plain["embed"] = statistics.median(http)
                print(f"embeddings, batch {len(SENTENCES)}: in-process encode {inproc:.1f} sentences/s, HTTP "
                      f"{statistics.median(http):.1f} sentences/s, ratio {statistics.median(http) / inproc:.3f}")

    if a.gguf_load:
        gguf_load(a.python)
    if a.openvino_python:
        openvino(a, folder, minilm, plain)


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
