"""Checking the engine against a corpus of schemas with valid and invalid instances (JSONSchemaBench), no model.

Each schema is compiled for a byte-level vocabulary (one token per byte, so every instance tokenizes one way)
and each instance's JSON text is fed through a fresh matcher. ``jsonschema`` is the oracle for what an accepted
instance must satisfy: an accepted instance it rejects is a *violation* (the engine enforced less than the
schema says). A valid instance the engine rejects is lost coverage (e.g. properties out of the schema's order).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from localai.constraints.compiler import compile_constraint
from localai.constraints.errors import ConstraintRefused

EOS = 256


def byte_tokenizer() -> Any:
    from localai.constraints.tokenizer import from_pieces

    pieces = [bytes([b]) for b in range(256)] + [b"<eos>"]
    return from_pieces(pieces, special=[EOS], end=[EOS], encode=lambda b: list(b))


@dataclass
class Outcome:
    refused: str | None = None  # the refusal message
    accepted_valid: int = 0
    rejected_valid: int = 0
    rejected_invalid: int = 0
    violations: list[str] = field(default_factory=list)  # instances accepted that jsonschema rejects


def feed(matcher: Any, data: bytes) -> bool:
    """Whether every byte of ``data`` is allowed in turn (each consumed), as generation would see them: the
    grammar and the JSON limits' digit mask (:class:`localai.constraints.Matcher`)."""
    if matcher.limiter is None:
        return bool(matcher.ll.consume_tokens(list(data)))
    for b in data:
        if not matcher.allows(b):
            return False
        matcher.consume(b)
    return True


def accepts(compiled: Any, text: str) -> bool:
    m = compiled.matcher()
    return feed(m, text.encode("utf-8")) and m.accepting


def oracle_valid(schema: Any, instance: Any) -> bool:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER).is_valid(instance)


def check_schema(schema: Any, tests: list[dict[str, Any]], tokenizer: Any) -> Outcome:
    from localai.types import Constraint

    out = Outcome()
    try:
        compiled = compile_constraint(Constraint(type="json_schema", json_schema=schema), tokenizer, close_objects=False)
    except ConstraintRefused as exc:
        out.refused = exc.message
        return out
    for test in tests:
        ok = accepts(compiled, json.dumps(test["data"], ensure_ascii=False))
        if ok and not oracle_valid(schema, test["data"]):
            out.violations.append(json.dumps(test["data"])[:200])
        elif test["valid"]:
            if ok:
                out.accepted_valid += 1
            else:
                out.rejected_valid += 1
        elif not ok:
            out.rejected_invalid += 1
    return out


def summary(rows: list[tuple[str, Outcome]]) -> dict[str, dict[str, int]]:
    """Per subset: schemas, compiled, refused, schemas whose every valid instance is accepted, violations."""
    table: dict[str, Counter] = {}
    for subset, o in rows:
        c = table.setdefault(subset, Counter())
        c["schemas"] += 1
        c["refused"] += o.refused is not None
        c["compiled"] += o.refused is None
        c["all_valid_accepted"] += o.refused is None and o.rejected_valid == 0
        c["violations"] += len(o.violations)
    return {k: dict(v) for k, v in sorted(table.items())}
