"""Does a backend give a greedy request the same answer whatever it served before? Measured per backend.

The twenty conversations of ``localai.testing.same_answer`` (short prompts, prompts past 512 tokens, pairs sharing
a long prefix, multi-turn chats with an assistant turn the model wrote; greedy, end tokens banned, 10 tokens with
logprobs) are answered one at a time on a fresh server (the reference), then: each twice in a row (the second
counts), each after a sibling sharing its prefix, and eight at a time (half streamed). Prints, per backend and
condition, how many answers equal the reference (tokens identical, logprobs within 1e-6) and how many in their tokens
alone, the largest logprob gap, and the first difference. The llama.cpp-family backends' tests assert all twenty; this states it for the others.

Run from the repository root (the environment backends need ``LOCALAI_BACKENDS_PATH``, as in scripts/test.sh)::

    LOCALAI_BACKENDS_PATH=... .venv/bin/python bench/same_answer.py --backends llama-cpp ik-llama-cpp transformers vllm
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from localai.testing import GGUF_NAME, ServerProcess, backend_python, default_gguf, gemma_hf_folder
from localai.testing.same_answer import (
    BATCH,
    Answer,
    after_siblings,
    ask,
    conversations,
    differences,
    gap,
    together,
    twice_in_a_row,
)

GGUF_YAML = "name: gemma\nbackend: {backend}\ncontext_size: 8192\n{extra}parameters:\n  model: " + GGUF_NAME + "\n"
HF_YAML = "name: gemma\nbackend: {backend}\ncontext_size: 8192\n{extra}parameters:\n  model: gemma-hf\n"
MODELS = {  # backend -> (YAML, environment backend whose Python the server needs, or None)
    "llama-cpp": (GGUF_YAML.format(backend="llama-cpp", extra="options: ['parallel:4']\n"), None),
    "ik-llama-cpp": (GGUF_YAML.format(backend="ik-llama-cpp", extra=""), None),
    "turboquant": (GGUF_YAML.format(backend="turboquant", extra="cache_type_k: turbo3\ncache_type_v: turbo3\n"
                                    "options: ['parallel:4']\n"), "turboquant"),
    "transformers": (HF_YAML.format(backend="transformers", extra=""), "transformers"),
    "vllm": (HF_YAML.format(backend="vllm", extra="enforce_eager: true\noptions: ['kv_cache_space:1']\n"), "vllm"),
}


def summary(label: str, reference: list[Answer], got: list[Answer]) -> str:
    diffs = differences(reference, got)
    largest = max(gap(r, g) for r, g in zip(reference, got))
    same = len(reference) - len(diffs)
    tokens = sum(r[0] == g[0] for r, g in zip(reference, got))
    first = f"; first: {diffs[0][:160]}" if diffs else ""
    return (f"  {label:28} {same:2d}/{len(reference)} identical ({tokens}/{len(reference)} in tokens alone), "
            f"largest logprob gap {largest:.3g}{first}")


def measure(backend: str, models: Path, env: dict[str, str]) -> None:
    start = time.perf_counter()
    with ServerProcess(models, env=env) as srv:
        chats = conversations(srv)
        reference = [ask(srv, c) for c in chats]
        runs = (("the second of two in a row", twice_in_a_row(srv, chats)), ("after a sibling", after_siblings(srv, chats)),
                (f"{BATCH} at a time, half streamed", together(srv, chats)))
    print(f"{backend} ({time.perf_counter() - start:.0f} s):")
    for label, got in runs:
        print(summary(label, reference, got), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", nargs="+", default=["llama-cpp", "ik-llama-cpp"], choices=list(MODELS))
    args = ap.parse_args()
    for backend in args.backends:
        yaml, environment = MODELS[backend]
        env = {"HF_HUB_OFFLINE": "1"}
        with tempfile.TemporaryDirectory() as tmp:
            models = Path(tmp, "models")
            models.mkdir()
            if environment:
                python, where = backend_python(environment)
                if not python:
                    print(f"{backend}: skipped, {where}")
                    continue
                env["LOCALAI_PYTHON_" + environment.upper()] = python
            if "gemma-hf" in yaml:
                (models / "gemma-hf").symlink_to(gemma_hf_folder(env["LOCALAI_PYTHON_" + environment.upper()]))
            else:
                (models / GGUF_NAME).symlink_to(default_gguf())
            (models / "gemma.yaml").write_text(yaml)
            measure(backend, models, env)


if __name__ == "__main__":
    main()
