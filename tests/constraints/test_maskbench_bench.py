"""bench/maskbench.py scores schemas the way MaskBench does, and fails loudly on what must never happen.

Pins, on a small corpus laid out as ``maskbench/data`` (files from the committed sample plus crafted ones):
a schema whose instances behave is *passing*; a valid instance out of the schema's property order is a
*validation error*; an unsupported keyword is a *compile error*; an instance labelled invalid that the
engine lets through is an *invalidation error* and makes the run exit 1; a schema slower than ``--timeout``
is a *timeout* (and exit 1), not a hung run. Both engines (ours and the raw-llguidance baseline) are scored.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "maskbench.py"
SAMPLE = ROOT / "tests" / "data" / "jsonschemabench" / "sample.jsonl"

OBJ = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"]}
CRAFTED = {
    "Crafted---passing.json": {"schema": OBJ, "tests": [{"valid": True, "data": {"a": 1, "b": "x"}},
                                                         {"valid": False, "data": {"a": "1"}}]},
    "Crafted---order.json": {"schema": OBJ, "tests": [{"valid": True, "data": {"b": "x", "a": 1}}]},
    "Crafted---refused.json": {"schema": {"type": "string", "not": {"const": "x"}}, "tests": []},
}


def corpus(tmp_path: Path, extra: dict[str, dict]) -> Path:
    data = tmp_path / "maskbench" / "data"
    data.mkdir(parents=True)
    for line in SAMPLE.read_text().splitlines()[:40:4]:
        item = json.loads(line)
        (data / item["file"]).write_text(json.dumps({"schema": item["schema"], "tests": item["tests"]}))
    for name, body in {**CRAFTED, **extra}.items():
        (data / name).write_text(json.dumps(body))
    return tmp_path


def bench(root: Path, *args: str) -> tuple[int, str, dict[tuple[str, str], dict]]:
    out = root / "results.jsonl"
    r = subprocess.run([sys.executable, str(BENCH), str(root), "--jobs", "1", "--json", str(out), *args],
                       capture_output=True, text=True, timeout=300)
    rows = {(row["engine"], row["file"]): row for row in map(json.loads, out.read_text().splitlines())}
    return r.returncode, r.stdout, rows


def test_statuses_as_maskbench_counts_them(tmp_path: Path) -> None:
    rc, stdout, rows = bench(corpus(tmp_path, {}))
    assert rc == 0, stdout
    for engine in ("localai", "llguidance"):
        assert rows[(engine, "Crafted---passing.json")]["status"] == "passing"
        assert rows[(engine, "Crafted---order.json")]["status"] == "validation error"
        assert rows[(engine, "Crafted---refused.json")]["status"] == "compile error"
    assert "keyword 'not'" in rows[("localai", "Crafted---refused.json")]["reason"]
    assert all(row.get("violations", 0) == 0 for row in rows.values())
    assert "Against MaskBench's published runs" in stdout and "XGrammar 0.1.17" in stdout
    assert "llguidance" in stdout and ", raw" in stdout


def test_an_invalid_instance_let_through_fails_the_run(tmp_path: Path) -> None:
    # Labelled invalid but valid by the schema: the engine rightly accepts it, which MaskBench counts against it.
    mislabelled = {"Crafted---mislabelled.json": {"schema": OBJ, "tests": [{"valid": False, "data": {"a": 2}}]}}
    rc, stdout, rows = bench(corpus(tmp_path, mislabelled), "--no-baseline")
    assert rows[("localai", "Crafted---mislabelled.json")]["status"] == "invalidation error"
    assert rc == 1
    assert "first invalidation errors" in stdout
    assert not any(engine == "llguidance" for engine, _ in rows)


def test_a_schema_over_the_time_limit_is_a_timeout(tmp_path: Path) -> None:
    rc, stdout, rows = bench(corpus(tmp_path, {}), "--no-baseline", "--timeout", "0.000001", "--limit", "3")
    assert len(rows) == 3
    assert {row["status"] for row in rows.values()} == {"timeout"}
    assert rc == 1  # compile work is promised to be bounded: a schema past the limit fails the run
