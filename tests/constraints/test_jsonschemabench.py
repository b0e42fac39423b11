"""The shared constraint engine against a JSONSchemaBench sample (no model): nothing it accepts breaks the schema.

Pins: across ~570 real-world schemas, every instance the compiled constraint accepts is valid by ``jsonschema``
(0 violations); every schema either compiles or is refused with a message; coverage does not regress below
what llguidance reaches today (numbers printed with ``-s``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("llguidance")

from localai.constraints import corpus  # noqa: E402

SAMPLE = Path(__file__).parent.parent / "data" / "jsonschemabench" / "sample.jsonl"


@pytest.fixture(scope="module")
def results() -> list[tuple[str, corpus.Outcome]]:
    tok = corpus.byte_tokenizer()
    rows = []
    for line in SAMPLE.read_text().splitlines():
        item = json.loads(line)
        rows.append((item["subset"], corpus.check_schema(item["schema"], item["tests"], tok)))
    return rows


def test_sample_is_the_documented_size() -> None:
    lines = SAMPLE.read_text().splitlines()
    assert len(lines) >= 500
    assert len({json.loads(line)["subset"] for line in lines}) >= 15


def test_no_accepted_instance_violates_its_schema(results: list[tuple[str, corpus.Outcome]]) -> None:
    bad = [(s, o.violations) for s, o in results if o.violations]
    assert not bad, bad[:5]


def test_invalid_instances_are_rejected_and_valid_ones_mostly_accepted(results: list[tuple[str, corpus.Outcome]]) -> None:
    compiled = [o for _, o in results if o.refused is None]
    rejected_invalid = sum(o.rejected_invalid for o in compiled)
    accepted = sum(o.accepted_valid for o in compiled)
    valid = accepted + sum(o.rejected_valid for o in compiled)
    assert rejected_invalid > 500
    assert accepted / valid > 0.9, (accepted, valid)


def test_coverage_per_subset(results: list[tuple[str, corpus.Outcome]]) -> None:
    table = corpus.summary(results)
    for subset, row in table.items():
        print(f"{subset:24} {row}")
    total = sum(r["schemas"] for r in table.values())
    compiled = sum(r["compiled"] for r in table.values())
    assert compiled / total > 0.85, table
    assert all(r["refused"] + r["compiled"] == r["schemas"] for r in table.values())
