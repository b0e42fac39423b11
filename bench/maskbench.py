"""The shared constraint engine over the whole JSONSchemaBench MaskBench corpus, scored as MaskBench scores engines.

    .venv/bin/python bench/maskbench.py /path/to/jsonschemabench        # a clone of guidance-ai/jsonschemabench
    .venv/bin/python bench/maskbench.py --clone                         # clones it into the localai cache first
    .venv/bin/python bench/maskbench.py DIR --limit 500 --jobs 2 --timeout 120

No model: each of the ~11,300 schemas in ``maskbench/data`` is compiled by ``localai.constraints`` (the exact
language of the schema: objects are not closed, unlike generation's default) for a byte-level vocabulary, and
each of its test instances (``json.dumps(data)``, as MaskBench serialises them) is fed through a fresh matcher.
Statuses follow MaskBench's ``maskbench_results.py``:

- *passing*: compiled, every valid instance accepted and every invalid one rejected;
- *compile error*: refused (here: a 400 naming the keyword, or the server's size limits);
- *validation error*: a valid instance rejected (lost coverage);
- *invalidation error*: an invalid instance accepted: the engine enforced less than the schema (MaskBench
  counts a schema here when any of its invalid instances gets through, as we do);
- *crash* / *timeout*: the checking process died, or one schema took longer than ``--timeout``.

"Accepted" is MaskBench's: every token of the instance allowed. ``violations`` is stricter and our own: an
instance the matcher accepts *as complete* that ``jsonschema`` says is invalid, whatever its label (must be 0).

The same files also go through the installed llguidance alone (its defaults, the raw schema: MaskBench's own
llguidance driver) as a baseline in the same session: the difference is what the server's layer (schema
checks, normalisation, limits) adds or costs. The table ends with the figures MaskBench publishes for the other engines over the same files
(its README at
commit ba103c73: llguidance 0.7.10, XGrammar 0.1.17, llama.cpp grammars from llama-cpp-python 0.3.8's
``json_schema_to_grammar``, Outlines-core 0.2.3), so the rows compare like for like. Exits 1 on any
invalidation error, violation, crash or timeout of ours.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import select
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = "https://github.com/guidance-ai/jsonschemabench"
STATUSES = ("passing", "compile error", "validation error", "invalidation error", "crash", "timeout")
# MaskBench's README (commit ba103c73, 11,306 schemas): engine -> status -> schemas; "crash" is its segmentation
# faults plus out-of-memory kills. Its rows need not add up to 11,306 (it lists a few other outcomes).
PUBLISHED: dict[str, dict[str, int]] = {
    "llguidance 0.7.10": {"passing": 8909, "compile error": 2377, "validation error": 20, "invalidation error": 0,
                          "crash": 0, "timeout": 0},
    "XGrammar 0.1.17": {"passing": 8122, "compile error": 90, "validation error": 1408, "invalidation error": 1368,
                        "crash": 37, "timeout": 241},
    "llama.cpp (0.3.8)": {"passing": 6505, "compile error": 1301, "validation error": 2850,
                          "invalidation error": 649, "crash": 0, "timeout": 1},
    "XGrammar.cpp": {"passing": 6387, "compile error": 1718, "validation error": 2837, "invalidation error": 325,
                     "crash": 1, "timeout": 38},
    "Outlines-core 0.2.3": {"passing": 7050, "compile error": 1773, "validation error": 1415,
                            "invalidation error": 822, "crash": 188, "timeout": 60},
}
PUBLISHED_SCHEMAS = 11306


def subset_of(name: str) -> str:
    """``Github_easy---o1.json`` -> ``Github_easy``; ``BFCL_simple_3.json`` -> ``BFCL_simple`` (as the sample's maker)."""
    return name.split("---")[0] if "---" in name else name.rsplit("_", 1)[0]


# -- one schema (in a checking process) ---------------------------------------------------------------

class Ours:
    """One instance through a fresh :class:`localai.constraints.Matcher`: the grammar's mask and the JSON limits'
    digit mask, byte by byte, as a generation would meet them."""

    def __init__(self, matcher: Any) -> None:
        self.m = matcher

    def consume_tokens(self, tokens: list[int]) -> bool:
        from localai.constraints.corpus import feed

        return feed(self.m, bytes(tokens))

    def is_accepting(self) -> bool:
        return self.m.accepting


# Our variants: ``localai`` compiles the schema's exact language (objects left open) with the server's default
# JSON limits (localai.constraints.limits); ``:closed`` closes objects as generation does by default (an instance
# with keys the schema does not list becomes "valid rejected"); ``:nolimits`` turns the JSON limits off (flexible
# whitespace, no digit bounds), to measure what the limits cost in coverage.
def compile_ours(schema: Any, tokenizer: Any, variant: str = "localai") -> Any:
    """The server's path: a fresh matcher per instance, or ``ConstraintRefused``."""
    from localai.constraints.compiler import compile_constraint
    from localai.types import Constraint, JsonLimits

    flags = set(variant.split(":")[1:])
    limits = (JsonLimits(max_integer_digits=0, max_fraction_digits=0, max_exponent_digits=0, max_depth=0,
                         whitespace="flexible")
              if "nolimits" in flags else None)
    compiled = compile_constraint(Constraint(type="json_schema", json_schema=schema, limits=limits), tokenizer,
                                  close_objects="closed" in flags)
    return lambda: Ours(compiled.matcher())


def compile_llguidance(schema: Any, tokenizer: Any) -> Any:
    """The baseline: the installed llguidance on the raw schema with its defaults, as MaskBench drives it."""
    import llguidance
    from localai.constraints.errors import ConstraintRefused

    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema)
    except ValueError as exc:
        raise ConstraintRefused(str(exc)) from exc
    matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
    if matcher.is_error():
        raise ConstraintRefused(matcher.get_error())
    return matcher.deep_copy


VARIANTS = ("localai", "localai:closed", "localai:nolimits", "localai:closed:nolimits")


def score(path: str, tokenizer: Any, engine: str = "localai") -> dict[str, Any]:
    from localai.constraints.corpus import oracle_valid
    from localai.constraints.errors import ConstraintRefused

    data = json.loads(Path(path).read_text())
    tests = data.get("tests") or []
    out: dict[str, Any] = {"file": Path(path).name, "tests": len(tests), "violations": 0}
    t0 = time.perf_counter()
    try:
        fresh = (compile_llguidance(data["schema"], tokenizer) if engine == "llguidance"
                 else compile_ours(data["schema"], tokenizer, engine))
    except ConstraintRefused as exc:
        out.update(status="compile error", reason=f"{exc.code}: {exc.message}"[:300])
        return out
    out["ttfm_us"] = int((time.perf_counter() - t0) * 1e6)
    status, reason = "passing", None
    out["valid_instances"] = sum(1 for t in tests if t["valid"])
    out["valid_rejected"] = 0
    for i, test in enumerate(tests):
        text = json.dumps(test["data"], indent=None, ensure_ascii=False)
        m = fresh()
        ok = m.consume_tokens(list(text.encode("utf-8")))
        if ok and m.is_accepting() and not oracle_valid(data["schema"], test["data"]):
            out["violations"] += 1
        if ok and not test["valid"]:
            status, reason = "invalidation error", f"test #{i} should be rejected: {text[:160]}"
        elif not ok and test["valid"]:
            out["valid_rejected"] += 1
            if status == "passing":
                status, reason = "validation error", f"test #{i} should be accepted: {text[:160]}"
    out["status"] = status
    if reason:
        out["reason"] = reason
    return out


def serve(engine: str) -> None:
    """``--serve ENGINE``: read schema paths on stdin, write one JSON result per line."""
    from localai.constraints.corpus import byte_tokenizer

    tokenizer = byte_tokenizer()
    for line in sys.stdin:
        path = line.strip()
        try:
            result = score(path, tokenizer, engine)
        except Exception as exc:  # noqa: BLE001 - an engine exception is a finding, not the end of the run
            result = {"file": Path(path).name, "status": "crash", "reason": f"{type(exc).__name__}: {exc}"[:300]}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


# -- the driver ---------------------------------------------------------------------------------------

class Checker:
    """A ``--serve`` process; one schema at a time, killed and replaced on a timeout or a crash."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, __file__, "--serve", self.engine], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, bufsize=1)
        return self.proc

    def check(self, path: Path, timeout: float) -> dict[str, Any]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(f"{path}\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            proc.kill()
            proc.wait()
            return {"file": path.name, "status": "timeout", "reason": f"over {timeout:.0f} s"}
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            return {"file": path.name, "status": "crash", "reason": f"checking process exited with {code}"}
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run(files: list[Path], jobs: int, timeout: float, engine: str) -> list[dict[str, Any]]:
    from tqdm import tqdm

    todo: queue.Queue[Path] = queue.Queue()
    for f in files:
        todo.put(f)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    bar = tqdm(total=len(files), unit="schema", desc=engine)

    def work() -> None:
        checker = Checker(engine)
        try:
            while True:
                try:
                    path = todo.get_nowait()
                except queue.Empty:
                    return
                result = checker.check(path, timeout)
                result["subset"] = subset_of(path.name)
                result["engine"] = engine
                with lock:
                    results.append(result)
                    bar.update()
        finally:
            checker.close()

    threads = [threading.Thread(target=work) for _ in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bar.close()
    return results


def report(results: list[dict[str, Any]], baseline: list[dict[str, Any]] | None, variant: str = "localai") -> int:
    by_subset: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        by_subset[r["subset"]][r["status"]] += 1
        by_subset[r["subset"]]["violations"] += r.get("violations", 0)
    total = Counter()
    for c in by_subset.values():
        total.update(c)
    cols = ("passing", "compile error", "validation error", "invalidation error")
    print(f"\n{'subset':24} {'schemas':>7} " + " ".join(f"{c:>18}" for c in cols) + f" {'crash/timeout':>13} {'violations':>10}")
    for subset, c in sorted(by_subset.items()):
        n = sum(c[s] for s in STATUSES)
        print(f"{subset:24} {n:7d} " + " ".join(f"{c[s]:>10d} ({100 * c[s] / n:4.1f}%)" for s in cols)
              + f" {c['crash'] + c['timeout']:13d} {c['violations']:10d}")
    n = sum(total[s] for s in STATUSES)
    print(f"{'all':24} {n:7d} " + " ".join(f"{total[s]:>10d} ({100 * total[s] / n:4.1f}%)" for s in cols)
          + f" {total['crash'] + total['timeout']:13d} {total['violations']:10d}")

    print(f"\nAgainst MaskBench's published runs ({PUBLISHED_SCHEMAS} schemas; ours: {n}):")
    print(f"{'engine':24} " + " ".join(f"{s:>18}" for s in STATUSES))
    rows = {f"{variant} (llguidance {_llg_version()})": {s: total[s] for s in STATUSES}}
    if baseline:
        rows["llguidance " + _llg_version() + ", raw"] = dict(Counter(r["status"] for r in baseline))
    rows.update(PUBLISHED)
    for engine, row in rows.items():
        m = PUBLISHED_SCHEMAS if engine in PUBLISHED else n
        print(f"{engine:24} " + " ".join(f"{row.get(s, 0):>10d} ({100 * row.get(s, 0) / m:4.1f}%)" for s in STATUSES))

    if baseline:
        print(f"violations (accepted as complete, invalid by jsonschema): localai {total['violations']}, raw llguidance "
              f"{sum(r.get('violations', 0) for r in baseline)}")
    ttfm = sorted(r["ttfm_us"] for r in results if "ttfm_us" in r)
    if ttfm:
        q = statistics.quantiles(ttfm, n=100)
        print(f"\ncompile time (schema check, normalisation, grammar, matcher; byte vocabulary): p50 {q[49] / 1e3:.1f} ms, "
              f"p75 {q[74] / 1e3:.1f} ms, p99 {q[98] / 1e3:.1f} ms, max {ttfm[-1] / 1e3:.1f} ms")
    reasons = Counter(_reason_key(r.get("reason", "")) for r in results if r["status"] == "compile error")
    print("\ncompile errors by reason:")
    for reason, k in reasons.most_common(15):
        print(f"  {k:5d}  {reason}")
    for status in ("invalidation error", "validation error", "crash", "timeout"):
        bad = [r for r in results if r["status"] == status]
        if bad:
            print(f"\nfirst {status}s:")
            for r in bad[:8]:
                print(f"  {r['file']}: {r.get('reason', '')}")
    bad = total["invalidation error"] + total["violations"] + total["crash"] + total["timeout"]
    return 1 if bad else 0


def _llg_version() -> str:
    from importlib.metadata import version

    return version("llguidance")


def _reason_key(reason: str) -> str:
    """A refusal's kind without the schema location (it differs per schema)."""
    code, _, message = reason.partition(": ")
    if "keyword '" in message:
        return f"{code}: keyword {message.split(chr(39))[1]!r}"
    for marker in ("format '", "oneOf whose", "regex", "too complex", "not a valid JSON schema", "$ref"):
        if marker in message:
            return f"{code}: {marker.strip(chr(39) + ' ')}"
    return f"{code}: {message.split(': ', 1)[-1][:70]}"


def clone() -> Path:
    """A shallow clone of the corpus in the localai cache (a clear error offline)."""
    dest = Path(os.environ.get("LOCALAI_CACHE", Path.home() / ".cache" / "localai")) / "jsonschemabench"
    if (dest / "maskbench" / "data").is_dir():
        return dest
    r = subprocess.run(["git", "clone", "--depth", "1", REPO, str(dest)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"cannot clone {REPO} (offline?): {r.stderr.strip()[-300:]}\n"
                 "Clone it where it can be reached and pass its path instead.")
    return dest


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", type=Path, help="a checkout of guidance-ai/jsonschemabench")
    ap.add_argument("--clone", action="store_true", help=f"clone {REPO} into the localai cache and use it")
    ap.add_argument("--limit", type=int, default=0, help="only the first N files (sorted), 0 for all")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="checking processes")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per schema before it counts as a timeout")
    ap.add_argument("--json", type=Path, help="also write every schema's result here (JSON lines)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the same-session baseline run of the installed llguidance on the raw schemas")
    ap.add_argument("--variant", default="localai", choices=VARIANTS,
                    help="ours as scored: localai = the schema's exact language with the default JSON limits; "
                         ":closed = objects closed as generation closes them; :nolimits = JSON limits off")
    ap.add_argument("--compare", choices=VARIANTS,
                    help="also run this variant of ours and print the valid instances each rejects")
    args = ap.parse_args()
    root = clone() if args.clone else args.corpus
    if root is None:
        ap.error("give the corpus path or --clone")
    data = root / "maskbench" / "data"
    files = sorted(data.glob("*.json"))
    if not files:
        sys.exit(f"no schemas under {data}")
    if args.limit:
        files = files[: args.limit]
    t0 = time.monotonic()
    results = run(files, max(1, args.jobs), args.timeout, args.variant)
    print(f"{len(results)} schemas in {time.monotonic() - t0:.0f} s with {args.jobs} process(es)")
    other = run(files, max(1, args.jobs), args.timeout, args.compare) if args.compare else []
    baseline = None if args.no_baseline else run(files, max(1, args.jobs), args.timeout, "llguidance")
    if args.json:
        rows = sorted([*results, *other, *(baseline or [])], key=lambda r: (r["engine"], r["file"]))
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = report(results, baseline, args.variant)
    for name, rows in ((args.variant, results), (args.compare, other)):
        if rows:
            valid = sum(r.get("valid_instances", 0) for r in rows)
            rejected = sum(r.get("valid_rejected", 0) for r in rows)
            print(f"{name}: valid instances rejected {rejected} of {valid} ({100 * rejected / max(1, valid):.2f}%) "
                  f"over the schemas it compiled; status counts {dict(Counter(r['status'] for r in rows))}")
    sys.exit(code)


if __name__ == "__main__":
    main()
