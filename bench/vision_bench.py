"""Images in: localai's llama-cpp backend with an ``mmproj`` against llama.cpp's own C++ ``llama-server --mmproj``,
built from the same vendored llama.cpp (bench/build_llama_server.sh), on the tiny Gemma 3 vision test model (the real
270M GGUF plus the projector of a random 2-layer SigLIP tower, ``localai.testing.models.gemma_vision``).

Run from the repository root (needs a transformers backend environment to build the test model)::

    LOCALAI_BACKENDS_PATH=~/.cache/localai/backends-<key> .venv/bin/python bench/vision_bench.py --paired 3

Each request streams ``/v1/chat/completions``: one image (a new seeded noise PNG per request, so neither side reuses
an encoded image) and a question of about 32 tokens, 64 tokens out with the end tokens banned, greedy. Both sides
get the same threads, slots and context per slot; alternating pairs, median ratios. Reported: aggregate tokens/s
end to end (image encoding, prompt and decoding) and each side's time to first token: the median wall time of a
one-token answer to a new image, the server otherwise idle.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from localai.testing import GGUF_NAME, ServerProcess, backend_python, default_gguf, write_models  # noqa: E402
from localai.testing.models import gemma_vision  # noqa: E402
from run import EOG_BIAS, Result, llama_server_binary, run_clients, start_llama_server  # noqa: E402

QUESTION = ("Look at this picture carefully and tell me, in a few plain sentences, what you see in it, which colours "
            "stand out, and what it could be used for.")
_SEED = iter(range(10**9))


def noise_png() -> str:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(next(_SEED)).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def one(url: str, model: str, tokens: int) -> tuple[int, float, int]:
    """(completion tokens, seconds to first text, prompt tokens) of one streamed image request."""
    body = {"model": model, "max_tokens": tokens, "temperature": 0, "stream": True, "logit_bias": EOG_BIAS,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": noise_png()}},
                                                      {"type": "text", "text": QUESTION}]}]}
    start = time.perf_counter()
    first, usage = 0.0, {}
    with httpx.Client(timeout=600) as c, c.stream("POST", url + "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            data = json.loads(line[6:])
            usage = data.get("usage") or usage
            choices = data.get("choices")
            if choices and choices[0].get("delta", {}).get("content") and not first:
                first = time.perf_counter() - start
    return int(usage.get("completion_tokens", 0)), first, int(usage.get("prompt_tokens", 0))


def first_token_ms(url: str, model: str, n: int = 3) -> float:
    """Median wall time of a one-token answer to a new image and the question: image encoding, prompt, one token.
    (Timing the first streamed text instead would credit whichever server prints special tokens as text.)"""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        one(url, model, 1)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run(url: str, model: str, clients: int, rounds: int, tokens: int) -> tuple[Result, int]:
    one(url, model, 4)  # warm-up
    res, prompt = Result(), [0]
    lock = threading.Lock()

    def client(_: int) -> None:
        for _ in range(rounds):
            try:
                n, first, p = one(url, model, tokens)
            except httpx.HTTPError as exc:
                with lock:
                    res.errors.append(str(exc))
                continue
            with lock:
                res.tokens += n
                res.ttft.append(first)
                prompt[0] = p

    res.wall = run_clients(client, clients)
    return res, prompt[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paired", type=int, default=3, help="alternating pairs per comparison")
    ap.add_argument("--rounds", type=int, default=2, help="requests per client per run")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    python, reason = backend_python("transformers")
    if python is None:
        raise SystemExit(f"the vision test model is built in a transformers environment: {reason}")
    mmproj = gemma_vision(python)[1]
    binary = llama_server_binary()
    if binary is None:
        raise SystemExit("llama-server could not be built")
    work = Path(tempfile.mkdtemp(prefix="localai-vision-bench-"))
    models = work / "models"
    yamls = {f"v{n}.yaml": (f"name: v{n}\nbackend: llama-cpp\ncontext_size: {2048 * n}\nthreads: {args.threads}\n"
                            f"mmproj: mmproj.gguf\noptions: ['parallel:{n}']\nparameters:\n  model: {GGUF_NAME}\n")
             for n in (1, 4)}
    write_models(models, yamls)
    (models / "mmproj.gguf").symlink_to(mmproj)
    with ServerProcess(models) as srv:
        for n, clients in ((1, 1), (4, 4)):
            # The 270M GGUF has no chat template: llama.cpp's built-in gemma one (legacy templating), as ours uses its own.
            proc, url = start_llama_server(binary, str(default_gguf()), args.threads, n, work / f"llama-server-{n}.log",
                                           clients + 4, ["--mmproj", str(mmproj), "--no-jinja", "--chat-template", "gemma"])
            try:
                pairs, ttft = [], []
                for _ in range(args.paired):
                    base, base_prompt = run(url, "x", clients, args.rounds, args.tokens)
                    ours, our_prompt = run(srv.url, f"v{n}", clients, args.rounds, args.tokens)
                    pairs.append((base, ours))
                    ttft.append((first_token_ms(url, "x"), first_token_ms(srv.url, f"v{n}")))
                ratios = sorted(b.tps / a.tps for a, b in pairs if a.tps)
                errors = sum(len(a.errors) + len(b.errors) for a, b in pairs)
                print(f"image + question, {args.tokens} tokens out, parallel {n} vs llama-server -np {n}, {clients} "
                      f"client(s): median {statistics.median(ratios):.2f}x (range {ratios[0]:.2f}-{ratios[-1]:.2f}, "
                      f"{len(ratios)} pairs; {statistics.median(b.tps for _, b in pairs):.1f} vs "
                      f"{statistics.median(a.tps for a, _ in pairs):.1f} tok/s); time to first token (alone) "
                      f"{statistics.median(o for _, o in ttft):.0f} ms vs {statistics.median(b for b, _ in ttft):.0f} ms; "
                      f"prompt tokens {our_prompt} vs "
                      f"{base_prompt}" + (f"; {errors} failed requests" if errors else ""), flush=True)
            finally:
                proc.terminate()
                proc.wait(30)


if __name__ == "__main__":
    main()
