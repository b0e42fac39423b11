"""Constrained vs unconstrained decoding speed on the default model (llama-cpp backend, in process).

    .venv/bin/python bench/constrained_speed.py [--rounds 5] [--tokens 96]

Each round decodes the same prompt once unconstrained (end-of-generation banned, so it runs ``--tokens``) and
once per schema with the shared constraint engine, alternating so both see the same machine load. Speed is
decode tokens/s from the first streamed token to the last (prompt processing excluded). Prints medians and
the ratio constrained / unconstrained (target >= 0.9), plus the engine's own per-token mask cost.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from localai.config import ModelConfig
from localai.testing import default_gguf
from localai.types import Constraint, GenerateRequest, SamplingParams

PROMPT = "<start_of_turn>user\nList some groceries with quantities as JSON.<end_of_turn>\n<start_of_turn>model\n"
SCHEMAS = {
    "groceries": {"type": "object", "properties": {"items": {"type": "array", "items": {
        "type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
                                         "qty": {"type": "integer", "minimum": 0, "maximum": 100}},
        "required": ["name", "qty"]}}}, "required": ["items"]},
    "strings": {"type": "array", "items": {"type": "string"}, "minItems": 8},
    # unbounded numbers: the JSON limits' digit mask (localai.constraints.limits) narrows the grammar's at each cap
    "numbers": {"type": "array", "items": {"type": "number"}, "minItems": 8},
}
EOG_BIAS = {1: -100.0, 106: -100.0}  # Gemma's <eos>, <end_of_turn>


def decode_rate(model: Any, req: GenerateRequest) -> tuple[float, int]:
    first = last = None
    n = 0
    for chunk in model.generate(req, lambda: False):
        now = time.perf_counter()
        if chunk.tokens:
            if first is None:
                first = now
                n -= chunk.tokens  # the first token's time includes the prompt: count from it
            n += chunk.tokens
            last = now
    return (n / (last - first) if first and last and last > first else 0.0), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from localai_llama_cpp.model import LlamaCppModel

    gguf = default_gguf()
    config = ModelConfig.model_validate({"name": "bench", "context_size": 1024, "threads": args.threads,
                                         "parameters": {"model": str(gguf)}})
    model = LlamaCppModel.load(config, str(gguf), {}, "llama-cpp")
    model._vocab.get()
    from localai.constraints import limits

    started = time.perf_counter()
    limits.token_classes(model._vocab.get())  # once per loaded model, on its first JSON-schema request
    print(f"JSON limits' digit table: {(time.perf_counter() - started) * 1000:.0f} ms for {model.llm.n_vocab()} tokens (once per model)")
    plain = GenerateRequest(model="bench", prompt=PROMPT, max_tokens=args.tokens,
                            sampling=SamplingParams(temperature=0, logit_bias=EOG_BIAS))
    reqs = {name: GenerateRequest(model="bench", prompt=PROMPT, max_tokens=args.tokens, sampling=SamplingParams(temperature=0),
                                  constraint=Constraint(type="json_schema", json_schema=s)) for name, s in SCHEMAS.items()}
    decode_rate(model, plain)
    for r in reqs.values():
        decode_rate(model, r)  # warm: compiled grammars are cached, the KV holds the prompt
    rates: dict[str, list[float]] = {"unconstrained": [], **{k: [] for k in reqs}}
    counts: dict[str, int] = {}
    for _ in range(args.rounds):
        rates["unconstrained"].append(decode_rate(model, plain)[0])
        for name, r in reqs.items():
            rate, n = decode_rate(model, r)
            rates[name].append(rate)
            counts[name] = n
    base = statistics.median(rates["unconstrained"])
    print(f"unconstrained      {base:7.1f} tok/s (median of {args.rounds}, {args.tokens} tokens)")
    for name in reqs:
        med = statistics.median(rates[name])
        print(f"{name:18} {med:7.1f} tok/s  ratio {med / base:.2f}  ({counts[name]} decode tokens)")
    # the engine's own cost per token (mask + consume), on this vocabulary
    import numpy as np
    from localai.constraints import compile_constraint
    from localai.types import JsonLimits

    text = '{"items": [{"name": "apples", "qty": 6}, {"name": "bread", "qty": 1}, {"name": "milk", "qty": 2}]}'
    ids = model.llm.tokenize(text.encode(), add_bos=False)
    logits = np.random.default_rng(0).standard_normal(model.llm.n_vocab()).astype(np.float32)
    off = JsonLimits(max_integer_digits=0, max_fraction_digits=0, max_exponent_digits=0, max_depth=0)
    per: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(5):  # alternating, so both see the same machine load
        for name, lim in (("with", None), ("without", off)):
            constraint = reqs["groceries"].constraint.model_copy(update={"limits": lim})
            m = compile_constraint(constraint, model._vocab.get()).matcher()
            start = time.perf_counter()
            for t in ids:
                row = logits.copy()
                m.mask_logits(row)
                m.consume(t)
            per[name].append((time.perf_counter() - start) / len(ids) * 1000)
    print(f"mask+consume per token: {statistics.median(per['with']):.3f} ms with the JSON limits' token mask, "
          f"{statistics.median(per['without']):.3f} ms without, over a {model.llm.n_vocab()}-token vocabulary")
    model.close()


if __name__ == "__main__":
    main()
