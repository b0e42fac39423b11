"""The JSON limits (localai.constraints.limits): how a JSON answer may be written where its schema is silent.

Byte-level vocabulary (one token per byte), so "digits" and "tokens" coincide and every check is exact. The
model-level outcome (answers that finish) is pinned in ``test_json_limits_api.py``.
"""

from __future__ import annotations

import json

import pytest
from localai.constraints import compile_constraint, limits
from localai.constraints.corpus import byte_tokenizer, feed
from localai.constraints.diagnose import cut_at
from localai.types import Constraint, JsonLimits

OFF = JsonLimits(max_integer_digits=0, max_fraction_digits=0, max_exponent_digits=0, max_depth=0, whitespace="flexible")
PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def matcher(tok, schema, lim: JsonLimits | None = None):
    return compile_constraint(Constraint(type="json_schema", json_schema=schema, limits=lim), tok).matcher()


def prefix_allowed(tok, schema, text: str, lim: JsonLimits | None = None) -> int:
    """How many bytes of ``text`` the matcher takes before refusing one (``len(text)``: all of them)."""
    m = matcher(tok, schema, lim)
    for i, b in enumerate(text.encode()):
        if not m.allows(b):
            return i
        m.consume(b)
    return len(text)


def accepts(tok, schema, text: str, lim: JsonLimits | None = None) -> bool:
    m = matcher(tok, schema, lim)
    return feed(m, text.encode()) and m.accepting


def test_defaults_are_documented_values() -> None:
    d = limits.resolve()
    assert (d.max_integer_digits, d.max_fraction_digits, d.max_exponent_digits) == (16, 20, 3)
    assert d.max_string_length == 0 and d.max_items == 0 and d.max_depth == 20 and d.whitespace == "spaced"


def test_integer_part_stops_at_16_digits_by_default(tok) -> None:
    ok = '{"name": "Bob", "age": ' + "4" * 16 + "}"
    assert accepts(tok, PERSON, ok)
    over = '{"name": "Bob", "age": ' + "4" * 17 + "}"
    assert prefix_allowed(tok, PERSON, over) == over.index("4") + 16  # the 17th digit is refused, "}" would do
    assert accepts(tok, PERSON, over, OFF)  # limits off: the schema's language alone


def test_fraction_and_exponent_are_bounded(tok) -> None:
    number = {"type": "number"}
    assert accepts(tok, number, "0." + "0" * 19 + "1")  # 20 fraction digits: any double as Python writes it
    assert prefix_allowed(tok, number, "0." + "0" * 21) == 22
    assert accepts(tok, number, "1.5e-308") and prefix_allowed(tok, number, "1e1000") == 5
    assert accepts(tok, number, "-12.5E+10")


def test_every_double_repr_fits_the_defaults(tok) -> None:
    """The fraction limit is chosen so that ``repr`` of any double stays writable."""
    values = [0.1, 1 / 3, 2 / 3e3, 1e-4 / 3, 123456789012345.6, 9007199254740993.0, 5e-324, 1.7976931348623157e308,
              -0.00012345678901234567, 1e16, 1e22]
    for v in values:
        assert accepts(tok, {"type": "number"}, repr(v)), repr(v)


def test_request_limits_change_the_bounds(tok) -> None:
    three = JsonLimits(max_integer_digits=3, max_fraction_digits=2)
    assert prefix_allowed(tok, {"type": "number"}, "1234", three) == 3
    assert prefix_allowed(tok, {"type": "number"}, "1.234", three) == 4
    assert accepts(tok, {"type": "number"}, "123.45", three)
    assert accepts(tok, {"type": "number"}, "1" * 40, JsonLimits(max_integer_digits=0))  # 0: no limit


def test_the_schemas_own_numbers_win(tok) -> None:
    """A bound, const or enum needing more digits than the limit raises the limit for that request."""
    needs_17 = {"type": "integer", "minimum": 10**16, "maximum": 10**17}
    assert limits.mask_caps(needs_17)[0] == 18
    assert accepts(tok, needs_17, "12345678901234567")
    assert limits.mask_caps({"type": "number", "maximum": 0.123456}, JsonLimits(max_fraction_digits=3))[1] == 6
    assert accepts(tok, {"enum": [0.12345, 0.5]}, "0.12345", JsonLimits(max_fraction_digits=3))
    assert prefix_allowed(tok, {"type": "number"}, "0.12345", JsonLimits(max_fraction_digits=3)) == 5
    assert accepts(tok, {"const": 0.12345}, "0.12345", JsonLimits(max_fraction_digits=3))
    assert accepts(tok, {"enum": [1234567, 2]}, "1234567", JsonLimits(max_integer_digits=2))


def test_a_digit_the_grammar_demands_is_never_masked(tok) -> None:
    """Where only another digit can follow, the limit steps aside rather than leave no token at all."""
    m = matcher(tok, {"type": "string"}, JsonLimits(max_integer_digits=1))
    assert feed(m, b'"123456"') and m.accepting  # digits inside strings are not numbers
    m = matcher(tok, {"type": "integer", "minimum": 100000}, JsonLimits(max_integer_digits=2))
    # the schema's minimum raises the cap to 6; with a cap of 2 alone "1" followed by anything else is invalid
    assert feed(m, b"100000") and m.accepting


def test_whitespace_modes(tok) -> None:
    spaced, compact, indented = '{"name": "Bob", "age": 4}', '{"name":"Bob","age":4}', '{\n  "name": "Bob",\n  "age": 4\n}'
    assert accepts(tok, PERSON, spaced) and not accepts(tok, PERSON, compact) and not accepts(tok, PERSON, indented)
    c = JsonLimits(whitespace="compact")
    assert accepts(tok, PERSON, compact, c) and not accepts(tok, PERSON, spaced, c)
    f = JsonLimits(whitespace="flexible")
    assert all(accepts(tok, PERSON, t, f) for t in (spaced, compact, indented))
    assert not accepts(tok, PERSON, '{\n\n"name": "Bob", "age": 4}', f)  # one line break per gap at most
    assert json.dumps({"name": "Bob", "age": 4}) == spaced  # the default is exactly what json.dumps writes


def test_string_length_limit_applies_only_to_free_strings(tok) -> None:
    ten = JsonLimits(max_string_length=10)
    assert prefix_allowed(tok, {"type": "string"}, '"' + "a" * 20 + '"', ten) == 11
    assert accepts(tok, {"type": "string", "maxLength": 15}, '"' + "a" * 15 + '"', ten)  # the schema's maxLength wins
    assert accepts(tok, {"type": "string", "minLength": 12}, '"' + "a" * 12 + '"', ten)  # never below minLength
    assert accepts(tok, {"type": "string", "pattern": "^a+$"}, '"' + "a" * 30 + '"', ten)
    assert accepts(tok, {"type": "string"}, '"' + "a" * 500 + '"')  # off by default


def test_layers_resolve_request_over_model_over_defaults() -> None:
    model = JsonLimits(max_integer_digits=8, whitespace="compact")
    request = JsonLimits(max_integer_digits=4)
    got = limits.resolve(request, model)
    assert (got.max_integer_digits, got.whitespace, got.max_fraction_digits) == (4, "compact", 20)
    assert limits.resolve(None, model).max_integer_digits == 8
    with pytest.raises(ValueError):
        JsonLimits(max_integer_digits=-1)
    with pytest.raises(ValueError):
        JsonLimits.model_validate({"max_digits": 3})  # unknown keys are refused, never ignored


def test_cut_at_names_the_field_being_written() -> None:
    assert cut_at('{"name": "Bob", "age": 4200000') == limits_cut("$.age", "number")
    assert cut_at('{"items": [{"price": 1, "area": 0.000') == limits_cut("$.items[0].area", "number")
    assert cut_at('{"a": {"b": "some tex') == limits_cut("$.a.b", "string")
    assert cut_at('{"a": [1, 2, ') == limits_cut("$.a", "array")
    assert cut_at('{"a": 1, "b') == limits_cut("$", "key")
    assert cut_at('{"odd key": "x') == limits_cut("$['odd key']", "string")


def limits_cut(path: str, inside: str):
    from localai.constraints.diagnose import Cut

    return Cut(path, inside)


def test_the_digit_mask_removes_exactly_the_digits_at_the_limit(tok) -> None:
    """Below the limit the mask is the grammar's; at it, exactly the ten digit tokens are gone."""
    no_digits = JsonLimits(max_integer_digits=0, max_fraction_digits=0, max_exponent_digits=0)
    for text, removed in ((b'{"name": "B", "age": 42', set()), (b'{"name": "B", "age": ' + b"4" * 16, set(range(48, 58)))):
        limited, plain = matcher(tok, PERSON), matcher(tok, PERSON, no_digits)
        assert feed(limited, text) and feed(plain, text)
        a, b = limited.allowed(), plain.allowed()
        assert {int(t) for t in (b & ~a).nonzero()[0]} == removed
        assert not (a & ~b).any()  # never widens


def test_nesting_stops_at_the_depth_limit(tok) -> None:
    """Where the schema allows any object, a model nesting {"data": {"data": ... stops at the depth limit."""
    anything = {"type": "object"}
    deep = '{"a": ' * 20 + "1" + "}" * 20
    assert accepts(tok, anything, deep)
    too_deep = '{"a": ' * 21
    assert prefix_allowed(tok, anything, too_deep) == len('{"a": ' * 20)
    assert prefix_allowed(tok, {"type": "array"}, '[[[[', JsonLimits(max_depth=2)) == 2
    assert accepts(tok, anything, too_deep + "1" + "}" * 21, JsonLimits(max_depth=0))  # 0: no limit


def test_the_schemas_own_structure_raises_the_depth_limit(tok) -> None:
    schema: dict = {"type": "integer"}
    for _ in range(4):
        schema = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    assert limits.schema_depth(schema) == 4
    text = '{"x": ' * 4 + "1" + "}" * 4
    assert accepts(tok, schema, text, JsonLimits(max_depth=2))  # the schema needs 4 levels: the limit steps up
    tree = {"$defs": {"n": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/n"}}}}},
            "$ref": "#/$defs/n"}
    assert limits.schema_depth(tree) == 2  # a recursive schema is counted once: its depth is the limit's to bound


def test_array_items_limit_applies_only_to_unbounded_arrays(tok) -> None:
    three = JsonLimits(max_items=3)
    arr = {"type": "array", "items": {"type": "integer"}}
    assert accepts(tok, arr, "[1, 2, 3]", three) and not accepts(tok, arr, "[1, 2, 3, 4]", three)
    assert accepts(tok, {**arr, "maxItems": 5}, "[1, 2, 3, 4, 5]", three)  # the schema's maxItems wins
    assert accepts(tok, {**arr, "minItems": 4}, "[1, 2, 3, 4]", three)  # never below minItems
    assert accepts(tok, arr, "[" + ", ".join(["1"] * 100) + "]")  # off by default


def test_a_token_that_opens_mid_way_is_held_to_the_depth_limit() -> None:
    """Real vocabularies have tokens like ``": {"`` that close a key, then open an object: read from where the text
    is (inside the key), they open one too, and are refused at the limit."""
    from localai.constraints.tokenizer import from_pieces

    opener = b'": {"'
    pieces = [bytes([b]) for b in range(256)] + [opener, b"<eos>"]
    tok = from_pieces(pieces, special=[257], end=[257], encode=lambda b: list(b))
    m = compile_constraint(Constraint(type="json_schema", json_schema={"type": "object"}, limits=JsonLimits(max_depth=3)),
                           tok).matcher()
    assert feed(m, b'{"a')
    for _ in range(2):
        assert m.allows(256)
        m.consume(256)
        assert feed(m, b"a")
    assert not m.allows(256) and m.allows(ord('"'))  # at depth 3, inside the key: closing it is fine, opening is not
    assert not m.allowed()[256]
