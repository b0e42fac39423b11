"""JSONSchemaBench sample through the HTTP API on the real model: coverage, refusals, violations (must be 0).

    .venv/bin/python bench/jsonschemabench_api.py [--limit 200] [--skip 0] [--max-tokens 256] [--url http://...]
    .venv/bin/python bench/jsonschemabench_api.py --backend transformers      # or vllm (an installed environment)
    .venv/bin/python bench/jsonschemabench_api.py --backend ik-llama-cpp      # or turboquant (its installed environment)

Starts ``localai run`` with the default model (unless ``--url``) on ``--backend`` (llama-cpp, ik-llama-cpp and
turboquant: the GGUF; transformers and vllm: the HF folder written from it, in their backend environment) and
sends each sampled schema (tests/data/jsonschemabench/sample.jsonl, spread evenly over subsets) as
``response_format`` ``json_schema``.
Per subset it counts: valid (finished with ``stop`` and validates with ``jsonschema``), refused (400),
length (ran out of tokens), violations (finished but invalid: must be 0), errors (anything else, e.g. a dead
worker). Exits 1 on any violation or error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jsonschema
from localai.constraints.diagnose import cut_at
from localai.testing import GGUF_NAME, ServerProcess, backend_python, default_gguf, gemma_hf_folder, write_models

GGUF_BACKENDS = ("llama-cpp", "ik-llama-cpp", "turboquant")  # served from the GGUF (turboquant: in its environment)
SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "data" / "jsonschemabench" / "sample.jsonl"


def pick(limit: int) -> list[dict]:
    by_subset: dict[str, list[dict]] = defaultdict(list)
    for line in SAMPLE.read_text().splitlines():
        item = json.loads(line)
        by_subset[item["subset"]].append(item)
    chosen: list[dict] = []
    i = 0
    while len(chosen) < limit and any(i < len(v) for v in by_subset.values()):
        for items in by_subset.values():
            if i < len(items) and len(chosen) < limit:
                chosen.append(items[i])
        i += 1
    return chosen


def refusal_reason(r: httpx.Response) -> str:
    """A 400's error code and the start of its message, the schema location cut off (it differs per schema)."""
    try:
        err = r.json()["error"]
    except (ValueError, KeyError, TypeError):
        return r.text[:100]
    message = str(err.get("message", ""))
    return f"{err.get('code') or err.get('type')}: {message[:90]}"


LIMITS_OFF = {"whitespace": "flexible", "max_integer_digits": 0, "max_fraction_digits": 0, "max_exponent_digits": 0,
              "max_depth": 0, "max_string_length": 0, "max_items": 0}


def one(url: str, item: dict, max_tokens: int, limits: dict | None, saved: list | None = None) -> tuple[str, str]:
    """(outcome, detail) of one schema: valid / refused / length / violations / errors."""
    body = {"model": "gemma-3-270m", "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": "Produce one JSON value matching this schema:\n"
                          + json.dumps(item["schema"])[:2000]}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": item["schema"]}}}
    if limits is not None:
        body["json_limits"] = limits
    try:
        r = httpx.post(url + "/v1/chat/completions", json=body, timeout=600)
    except httpx.HTTPError as exc:
        return "errors", f"{item['file']}: {exc}"
    if r.status_code == 400:
        return "refused", refusal_reason(r)
    if r.status_code != 200:
        return "errors", f"{item['file']}: {r.status_code} {r.text[:200]}"
    choice = r.json()["choices"][0]
    text = choice["message"]["content"] or ""
    if saved is not None:
        saved.append({"file": item["file"], "finish": choice["finish_reason"], "text": text})
    if choice["finish_reason"] != "stop":
        where = cut_at(text)
        return "length", f"{where.inside}"
    try:
        jsonschema.validate(json.loads(text), item["schema"])
        return "valid", ""
    except (ValueError, jsonschema.ValidationError) as exc:
        return "violations", f"{item['file']}: VIOLATION {str(exc)[:200]}"


def run(url: str, items: list[dict], max_tokens: int, limits: dict | None = None, concurrency: int = 1,
        save: Path | None = None) -> int:
    table: dict[str, Counter] = defaultdict(Counter)
    samples: list[str] = []
    refusals: Counter = Counter()
    cuts: Counter = Counter()
    start = time.monotonic()
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        saved: list[dict] = []
        futures = [pool.submit(one, url, item, max_tokens, limits, saved) for item in items]
        for n, (item, fut) in enumerate(zip(items, futures), 1):
            outcome, detail = fut.result()
            row = table[item["subset"]]
            row["schemas"] += 1
            row[outcome] += 1
            if outcome == "refused":
                refusals[detail] += 1
            elif outcome == "length":
                cuts[detail] += 1
            elif detail:
                samples.append(detail)
            if n % 20 == 0:
                print(f"  {n}/{len(items)} in {time.monotonic() - start:.0f}s", file=sys.stderr)
    if save is not None:
        save.write_text("".join(json.dumps(s) + "\n" for s in saved))
    print(f"json_limits: {json.dumps(limits) if limits is not None else 'the server defaults'}; "
          f"{len(items)} schemas in {time.monotonic() - start:.0f} s")
    keys = ["schemas", "valid", "refused", "length", "violations", "errors"]
    print(f"{'subset':24}" + "".join(f"{k:>11}" for k in keys) + "   coverage")
    total = Counter()
    for subset, row in sorted(table.items()):
        total.update(row)
        print(f"{subset:24}" + "".join(f"{row[k]:>11}" for k in keys) + f"   {row['valid'] / row['schemas']:.2f}")
    print(f"{'TOTAL':24}" + "".join(f"{total[k]:>11}" for k in keys) + f"   {total['valid'] / max(1, total['schemas']):.2f}")
    if cuts:
        print("answers cut by max_tokens, by what they were writing: "
              + ", ".join(f"{what} {k}" for what, k in cuts.most_common()))
    if refusals:
        print("refusals by reason:")
        for reason, n in refusals.most_common():
            print(f"  {n:4d}  {reason}")
    for s in samples[:20]:
        print(s)
    return 1 if total["violations"] or total["errors"] else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--skip", type=int, default=0,
                    help="leave out the first N of the sample (to continue an earlier --limit N run)")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--subset", nargs="*", help="only these subsets (of the --limit sample), e.g. MCPspec Glaiveai2K")
    ap.add_argument("--url", help="an already running server (with a gemma-3-270m model); default: start one")
    ap.add_argument("--backend", default="llama-cpp", choices=GGUF_BACKENDS + ("transformers", "vllm"))
    ap.add_argument("--json-limits", default="",
                    help="the request's json_limits as JSON, or 'off' (no digit bounds, flexible whitespace: the engine "
                         "before the JSON limits); default: none sent, the server's defaults apply")
    ap.add_argument("--save", type=Path, help="write every answer (file, finish reason, text) here as JSON lines")
    ap.add_argument("--concurrency", type=int, default=1,
                    help="requests in flight at once (the model gets as many parallel slots on llama.cpp backends)")
    args = ap.parse_args()
    limits = LIMITS_OFF if args.json_limits == "off" else json.loads(args.json_limits) if args.json_limits else None
    items = [i for i in pick(args.limit)[args.skip:] if not args.subset or i["subset"] in args.subset]
    if args.url:
        sys.exit(run(args.url, items, args.max_tokens, limits, args.concurrency, args.save))
    import tempfile

    default_gguf()
    env: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend in GGUF_BACKENDS:
            yaml = (f"name: gemma-3-270m\nbackend: {args.backend}\ncontext_size: {4096 * max(1, args.concurrency)}\n"
                    f"options: ['parallel:{max(1, args.concurrency)}']\nparameters:\n  model: {GGUF_NAME}\n")
            folder = write_models(Path(tmp), {"gemma.yaml": yaml})
        else:
            python, where = backend_python(args.backend)
            if not python:
                raise SystemExit(where)
            extra = "enforce_eager: true\noptions: ['kv_cache_space:1']\n" if args.backend == "vllm" else ""
            yaml = f"name: gemma-3-270m\nbackend: {args.backend}\ncontext_size: 4096\n{extra}parameters:\n  model: gemma-hf\n"
            folder = write_models(Path(tmp), {"gemma.yaml": yaml}, link_gguf=False)
            (folder / "gemma-hf").symlink_to(gemma_hf_folder(python))
            env = {"LOCALAI_PYTHON_" + args.backend.upper(): python, "HF_HUB_OFFLINE": "1"}
        print(f"backend {args.backend}, {len(items)} schemas, max_tokens {args.max_tokens}", file=sys.stderr)
        with ServerProcess(folder, env=env) as srv:
            sys.exit(run(srv.url, items, args.max_tokens, limits, args.concurrency, args.save))


if __name__ == "__main__":
    main()
