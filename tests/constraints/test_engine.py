"""The shared constraint engine without a model: refusals name keyword and path, rewrites are exact, masks hold.

A byte-level vocabulary (one token per byte) makes every JSON text one token sequence, so "accepted" means
"the matcher lets exactly these bytes through and is complete at the end".
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from localai import constraints
from localai.constraints import corpus, keywords
from localai.types import Constraint

PARAM = "response_format.json_schema.schema"


@pytest.fixture(scope="module")
def tok():
    return corpus.byte_tokenizer()


def compiled(schema, tok, close=False):
    return constraints.compile_constraint(Constraint(type="json_schema", json_schema=schema), tok, close_objects=close)


def accepts(schema, text, tok, close=False) -> bool:
    return corpus.accepts(compiled(schema, tok, close), text)


def refusal(schema) -> constraints.ConstraintRefused:
    with pytest.raises(constraints.ConstraintRefused) as info:
        constraints.check(Constraint(type="json_schema", json_schema=schema), PARAM)
    return info.value


BOUNDS = {"type": "object", "properties": {"query": {"type": "string"},
                                           "limit": {"type": "integer", "minimum": 1, "maximum": 10}}}


@pytest.mark.parametrize("text, ok", [('{"query": "cat", "limit": 10}', True), ('{"limit": 1}', True),
                                      ('{"query": "cat", "limit": 1000000000000000}', False),
                                      ('{"limit": 0}', False), ('{"limit": 11}', False), ('{"limit": 5.5}', False)])
def test_integer_bounds_are_enforced(tok, text, ok) -> None:
    assert accepts(BOUNDS, text, tok) is ok


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "number", "exclusiveMinimum": 0.5, "maximum": 2.5}, ["0.51", "2.5", "1"], ["0.5", "2.51", "-1"]),
    ({"type": "integer", "multipleOf": 3}, ["9", "-3", "0"], ["10"]),
    ({"type": "number", "multipleOf": 0.01}, ["1.23", "4"], ["1.234"]),
    ({"type": "string", "minLength": 2, "maxLength": 3}, ['"ab"', '"abc"'], ['"a"', '"abcd"']),
    ({"type": "string", "pattern": "^[a-z]+$"}, ['"abc"'], ['"ab1"', '""']),
    ({"type": "string", "pattern": "[0-9]"}, ['"a1b"'], ['"ab"']),  # unanchored: a search, as JSON Schema says
    ({"type": "string", "format": "date"}, ['"2024-02-29"'], ['"2024-13-01"', '"x"']),
    ({"type": "string", "format": "date-time"}, ['"2024-01-01T10:00:00Z"'], ['"2024-01-01"']),
    ({"type": "string", "format": "uuid"}, ['"123e4567-e89b-12d3-a456-426614174000"'], ['"123"']),
    ({"type": "string", "format": "email"}, ['"a@b.co"'], ['"ab.co"']),
    ({"type": "string", "format": "ipv4"}, ['"10.0.0.1"'], ['"10.0.0.256"']),
    ({"type": "string", "format": "byte"}, ['"anything"'], []),  # not a JSON Schema format: an annotation
    ({"enum": ["a", 1, None]}, ['"a"', "1", "null"], ['"b"', "2"]),
    ({"const": {"k": [1, 2]}}, ['{"k": [1, 2]}'], ['{"k": [1]}']),
    ({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}, "minItems": 2, "maxItems": 3},
     ['["a", 1]', '["a", 1, 2]'], ['["a"]', '[1, 1]', '["a", 1, 2, 3]']),
    ({"type": "array", "uniqueItems": False, "maxItems": 2}, ["[1, 1]"], ["[1, 1, 1]"]),
    ({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
     ['{"a": 1}', "{}"], ['{"b": 1}']),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, ['{"x": 1}'], ['{"x": "s"}']),
    ({"type": "object", "patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": False},
     ['{"x-a": 1}'], ['{"y": 1}', '{"x-a": "s"}']),
    ({"type": "object", "minProperties": 1, "maxProperties": 1}, ['{"a": 1}'], ["{}", '{"a": 1, "b": 2}']),
    ({"type": "object", "properties": {"b": {}, "a": {}}}, ['{"b": 1, "a": 2}'], ['{"a": 2, "b": 1}']),  # order kept
    ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, ["1", '"s"'], ["true"]),
    ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, ["1", '"s"'], ["true"]),
    ({"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}}, {"required": ["a"]}]},
     ['{"a": 1}'], ["{}", '{"a": "x"}']),
    ({"$defs": {"n": {"type": "object", "properties": {"c": {"type": "array", "items": {"$ref": "#/$defs/n"}}},
                      "additionalProperties": False}}, "$ref": "#/$defs/n"},
     ['{"c": [{"c": []}, {}]}'], ['{"c": [{"d": 1}]}']),
    ({"type": ["string", "null"]}, ['"s"', "null"], ["1"]),
    ({"type": "string", "nullable": True}, ['"s"', "null"], ["1"]),
    ({"type": "object", "properties": {"a": {}, "b": {}}, "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
     ['{"a": 1}', '{"b": 1}'], ["{}", '{"a": 1, "b": 2}']),
    ({"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "dependentRequired": {"a": ["b"]}},
     ['{"a": 1, "b": 2}', '{"c": 1}'], ['{"a": 1}', '{"a": 1, "c": 3}']),
])
def test_keywords_are_enforced_exactly(tok, schema, good, bad) -> None:
    for text in good:
        assert accepts(schema, text, tok), (schema, text)
        assert corpus.oracle_valid(schema, json.loads(text)) or "nullable" in schema
    for text in bad:
        assert not accepts(schema, text, tok), (schema, text)


@pytest.mark.parametrize("schema, path, word", [
    ({"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}},
     f"{PARAM}.properties.tags.uniqueItems", "uniqueItems"),
    ({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, f"{PARAM}.properties.x.not", "not"),
    ({"if": {"type": "string"}, "then": {"minLength": 2}}, f"{PARAM}.if", "if"),
    ({"type": "array", "contains": {"type": "integer"}}, f"{PARAM}.contains", "contains"),
    ({"type": "object", "propertyNames": {"pattern": "^a"}}, f"{PARAM}.propertyNames", "propertyNames"),
    ({"type": "object", "unevaluatedProperties": False}, f"{PARAM}.unevaluatedProperties", "unevaluatedProperties"),
    ({"type": "string", "format": "iri"}, f"{PARAM}.format", "iri"),
    ({"properties": {"p": {"type": "string", "pattern": "^(?=a)b$"}}}, f"{PARAM}.properties.p.pattern", "look-around"),
    ({"properties": {"z": {"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 2}]}}},
     f"{PARAM}.properties.z.oneOf", "oneOf"),
    ({"$ref": "https://example.com/schema.json"}, PARAM, "example.com"),
])
def test_unenforceable_keywords_are_refused_with_their_path(schema, path, word) -> None:
    exc = refusal(schema)
    assert exc.path == path and word in exc.message and exc.message.startswith(path), (exc.path, exc.message)
    assert exc.code == "unsupported_schema"


def test_invalid_schema_is_refused_by_the_meta_schema() -> None:
    exc = refusal({"type": "object", "properties": {"a": {"type": "strin"}}})
    assert exc.code == "invalid_schema" and exc.path.startswith(PARAM)


def test_huge_and_deep_schemas_are_refused_or_compiled_quickly(tok) -> None:
    """No schema holds a worker: each compiles or is refused within a bounded time (the SIGSEGV repro included)."""
    deep: dict = {"type": "string"}
    for _ in range(400):
        deep = {"type": "array", "items": deep}
    many = {"type": "object", "properties": {f"p{i}": {"type": "string", "maxLength": 65535} for i in range(2000)}}
    cases = [
        {"type": "object", "properties": {"d": {"type": "string", "maxLength": 65535}}, "required": ["d"]},
        {"type": "array", "items": {"type": "string", "minLength": 5000, "maxLength": 100000}, "minItems": 1000},
        {"type": "string", "pattern": "^(a{1,1000}){1,1000}$"},
        {"type": "string", "pattern": "^(a|b|c|d){500}[0-9]{1,600}$"},
        deep, many,
    ]
    for schema in cases:
        start = time.monotonic()
        try:
            m = compiled(schema, tok, close=True).matcher()
            mask = m.allowed()
            assert mask.any()
        except constraints.ConstraintRefused as exc:
            assert exc.code in ("schema_too_complex", "invalid_schema", "unsupported_schema"), exc
        assert time.monotonic() - start < 10, json.dumps(schema)[:100]


def test_sigsegv_schema_accepts_long_strings_and_stops_at_the_bound(tok) -> None:
    schema = {"type": "object", "properties": {"d": {"type": "string", "maxLength": 65535}}, "required": ["d"]}
    assert accepts(schema, json.dumps({"d": "x" * 5000}), tok)
    short = {"type": "string", "maxLength": 3}
    assert not accepts(short, '"abcd"', tok)


def test_closed_objects_narrow_but_never_widen(tok) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert accepts(schema, '{"a": 1, "b": 2}', tok, close=False)
    assert not accepts(schema, '{"a": 1, "b": 2}', tok, close=True)
    assert accepts(schema, '{"a": 1}', tok, close=True)
    explicit = {**schema, "additionalProperties": True}
    assert accepts(explicit, '{"a": 1, "b": 2}', tok, close=True)
    needs_more = {"type": "object", "properties": {"a": {}}, "required": ["a", "b"]}  # left open: closing it is unsatisfiable
    assert accepts(needs_more, '{"a": 1, "b": 2}', tok, close=True)
    merged = {"allOf": [{"type": "object", "properties": {"a": {}}}, {"properties": {"b": {}}, "required": ["b"]}]}
    assert accepts(merged, '{"a": 1, "b": 2}', tok, close=True)


def test_matcher_masks_logits_and_reports_done(tok) -> None:
    m = compiled({"enum": ["yes", "no"]}, tok).matcher()
    logits = np.zeros(corpus.EOS + 1 + 3, dtype=np.float32)  # a padded row: ids past the vocabulary never allowed
    m.mask_logits(logits)
    assert set(np.flatnonzero(np.isfinite(logits))) == {ord('"')}
    for b in b'"no"':
        m.consume(b)
    assert m.accepting and m.done
    allowed = m.allowed()
    assert list(np.flatnonzero(allowed)) == [corpus.EOS]
    with pytest.raises(constraints.ConstraintViolation):
        compiled({"enum": ["yes"]}, tok).matcher().consume(ord("x"))


def test_grammar_and_regex_constraints(tok) -> None:
    gbnf = constraints.compile_constraint(Constraint(type="grammar", grammar='root ::= "a" ("b" | "c")'), tok)
    assert corpus.accepts(gbnf, "ab") and not corpus.accepts(gbnf, "ad")
    rx = constraints.compile_constraint(Constraint(type="regex", regex="[0-9]{3}"), tok)
    assert corpus.accepts(rx, "123") and not corpus.accepts(rx, "12")
    with pytest.raises(constraints.ConstraintRefused):
        constraints.check(Constraint(type="grammar", grammar="root ::= ("))


def test_normalize_does_not_touch_the_callers_schema() -> None:
    schema = {"type": "string", "nullable": True}
    keywords.normalize(schema, close_objects=True)
    assert schema == {"type": "string", "nullable": True}


def test_bitmask_matches_the_bool_mask(tok) -> None:
    m = compiled({"type": "integer", "minimum": 3, "maximum": 5}, tok).matcher()
    words = m.bitmask().copy()
    bits = [(int(words[i // 32]) >> (i % 32)) & 1 for i in range(corpus.EOS + 1)]
    assert [i for i, b in enumerate(bits) if b] == [ord(c) for c in "345"]
    assert list(np.flatnonzero(m.allowed())) == [ord(c) for c in "345"]


WIN = {"type": "object", "required": ["id", "win"], "properties": {"id": {"type": "string"}}}
LOSE = {"type": "object", "required": ["id", "lose"], "properties": {"id": {"type": "string"}, "lose": {"type": "object"}}}


@pytest.mark.parametrize("schema", [
    {"type": "object", "oneOf": [WIN, LOSE]},
    {"$defs": {"win": WIN, "lose": LOSE}, "oneOf": [{"$ref": "#/$defs/win"}, {"$ref": "#/$defs/lose"}]},
], ids=["inline", "through-refs"])
def test_closing_objects_never_widens_a_one_of(schema, tok) -> None:
    """Closing the ``lose`` branch would make {id, win, lose} match one branch only, which ``oneOf`` accepts though
    the schema (both branches match) rejects it: generation's closed objects must stay out of ``oneOf`` branches."""
    both = '{"id": "g", "win": {}, "lose": {}}'
    assert not corpus.oracle_valid(schema, json.loads(both))
    try:
        c = compiled(schema, tok, close=True)
    except constraints.ConstraintRefused:
        return  # refusing (an overlapping oneOf) is sound too
    assert not corpus.accepts(c, both)
