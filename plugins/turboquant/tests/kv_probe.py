"""Run by the turboquant environment's Python (``python kv_probe.py GGUF``): what each KV cache type does.

Prints JSON: per cache type, the KV state size after a fixed prompt (``llama_state_seq_get_size``: the cache's
bytes for that many cells) and, against f16, teacher-forced top-1 agreement and the largest logit difference
over a greedy f16 continuation of each prompt. Types resolve through the plugin (``engine.type_id``), as the
server's loads do.
"""

from __future__ import annotations

import json
import sys

import llama_cpp
import numpy as np
from localai_turboquant import engine

STANDARD = {"f16": 1, "q8_0": 8}
TYPES = ("f16", "q8_0", "turbo4", "turbo3", "turbo2")
PROMPTS = ("The three primary colors are", "def fibonacci(n):\n    ", "Paris is the capital of",
           "Once upon a time, in a small village,")
SIZE_TEXT = " ".join(f"item {i}," for i in range(30))  # a fixed prompt, ~145 tokens
CONTINUATION = 32


def load(path: str, cache_type: str) -> llama_cpp.Llama:
    tid = STANDARD[cache_type] if cache_type in STANDARD else engine.type_id(cache_type)
    return llama_cpp.Llama(model_path=path, n_ctx=256, n_batch=256, n_threads=2, type_k=tid, type_v=tid,
                           flash_attn=True, logits_all=True, verbose=False)


def rows(llm: llama_cpp.Llama, tokens: list[int], start: int) -> np.ndarray:
    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[start - 1: len(tokens) - 1], dtype=np.float32)


def main() -> None:
    path = sys.argv[1]
    out: dict[str, dict[str, float]] = {}
    sequences: list[tuple[list[int], int]] = []
    reference: list[np.ndarray] = []
    for cache_type in TYPES:
        llm = load(path, cache_type)
        llm.reset()
        llm.eval(llm.tokenize(SIZE_TEXT.encode()))
        entry = {"state_bytes": int(llama_cpp.llama_state_seq_get_size(llm.ctx, 0)), "tokens": llm.n_tokens}
        if cache_type == "f16":
            for prompt in PROMPTS:  # the greedy f16 continuation each type is scored on
                tokens = llm.tokenize(prompt.encode())
                llm.reset()
                llm.eval(tokens)
                seq = list(tokens)
                for _ in range(CONTINUATION):
                    seq.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
                    llm.eval([seq[-1]])
                sequences.append((seq, len(tokens)))
            reference = [rows(llm, seq, start) for seq, start in sequences]
        else:
            mine = [rows(llm, seq, start) for seq, start in sequences]
            agree = [float(np.mean(a.argmax(axis=1) == b.argmax(axis=1))) for a, b in zip(mine, reference)]
            entry["top1_agreement"] = float(np.mean(agree))
            entry["max_logit_diff"] = float(max(np.abs(a - b).max() for a, b in zip(mine, reference)))
        out[cache_type] = entry
        llm.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
