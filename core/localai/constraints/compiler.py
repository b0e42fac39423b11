"""Constraint -> llguidance grammar, checked without a tokenizer (server) or compiled against one (worker).

Everything is strict: llguidance's JSON compiler runs non-lenient (an unimplemented keyword is an error, not
ignored) and parser/lexer limits bound the work of compiling and of every token step, so no schema can hang
or crash a worker. Property order follows the schema, as llguidance does; how the JSON may be written where
the schema is silent (digits, depth, whitespace, string length, items) is bounded by :mod:`localai.constraints.limits`.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jsonschema

from localai.constraints import keywords
from localai.constraints import limits as json_limits
from localai.constraints.errors import ConstraintRefused
from localai.types import JsonLimits

MAX_SCHEMA_BYTES = 1_000_000  # a request's schema, serialised
JSON_OPTIONS = json_limits.json_options()  # the default limits' llguidance options (whitespace)


def limits() -> Any:
    """Bounds on compile and per-token work (llguidance's defaults, with a smaller grammar size)."""
    import llguidance

    return llguidance.LLParserLimits(max_grammar_size=200_000, initial_lexer_fuel=1_000_000, step_lexer_fuel=200_000,
                                     step_max_items=50_000, max_lexer_states=100_000, verbose_errors=False)


def _refuse_json(schema: dict[str, Any], message: str, param: str) -> ConstraintRefused:
    """A refusal naming the keyword and where it is, located from llguidance's message."""
    path: str | None = None
    keyword = None
    m = re.search(r'Unimplemented keys: \["([^"]+)"', message)
    if m:
        keyword = m.group(1)
        path = keywords.find_key(schema, keyword)
    elif (m := re.search(r"Unknown format: (\S+)", message)):
        path = keywords.find_key(schema, "format", m.group(1))
        message = f"format {m.group(1)!r} is not supported"
    elif "oneOf constraints are not supported" in message:
        path = _locate_one_of(schema)
        message = ("oneOf whose branches may overlap cannot be enforced exactly (only as anyOf); "
                   "make the branches disjoint (e.g. a const discriminator) or use anyOf")
    elif "regex" in message:
        path = _locate_pattern(schema)
    elif any(w in message for w in ("too large", "too complex", "fuel", "limit", "TooComplex", "size")):
        return ConstraintRefused(f"{param} is too complex to compile within the server's limits: {message}", param,
                                 "schema_too_complex")
    full = keywords.join(param, *path.split(".")) if path else param
    what = f"keyword {keyword!r}" if keyword else "this schema"
    if keyword:
        message = f"JSON-schema {what} cannot be enforced during generation"
    return ConstraintRefused(f"{full}: {message}", full)


def _error_of(schema: dict[str, Any]) -> str | None:
    import llguidance

    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, overrides=JSON_OPTIONS)
    except ValueError as exc:
        return str(exc)
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, None, limits=limits())
    return messages[0] if is_error and messages else None


def _with_defs(sub: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    return {**sub, **{k: root[k] for k in ("$defs", "definitions") if k in root and k not in sub}}


def _locate_one_of(schema: dict[str, Any]) -> str | None:
    """The deepest ``oneOf`` llguidance refuses on its own."""
    found = None
    for sub, path in keywords.subschemas(schema):
        if "oneOf" in sub:
            err = _error_of(_with_defs({"oneOf": sub["oneOf"]}, schema))
            if err and "oneOf" in err:
                found = keywords.join(path, "oneOf")
    return found or keywords.find_key(schema, "oneOf")


def _locate_pattern(schema: dict[str, Any]) -> str | None:
    for sub, path in keywords.subschemas(schema):
        for key, value in (("pattern", sub.get("pattern")), *((f"patternProperties.{k}", k) for k in sub.get("patternProperties") or {})):
            if isinstance(value, str) and _error_of({"type": "string", "pattern": value}):
                return keywords.join(path, *key.split("."))
    return None


def prepared_schema(schema: Any, close_objects: bool = True, bounds: JsonLimits | None = None) -> Any:
    """``schema`` as the engine compiles it: normalised (:func:`keywords.normalize`) and with ``bounds``' string
    length and array items applied. vLLM gets this same schema (with :func:`limits.json_options` under
    ``x-guidance``)."""
    schema = {} if schema is True else schema
    return json_limits.bound_sizes(keywords.normalize(schema, close_objects), bounds)


def json_schema_grammar(schema: Any, param: str, close_objects: bool = True, bounds: JsonLimits | None = None) -> str:
    """The llguidance grammar enforcing ``schema``; :class:`ConstraintRefused` when it cannot.

    ``close_objects`` (generation's default): objects without a word on extra keys get none, as with llama.cpp;
    ``False`` gives exactly the schema's language (the corpus test checks that one). ``bounds``: how the JSON may
    be written (whitespace, string length and items here; digits and depth are the matcher's mask, see
    :func:`compile_constraint`).
    """
    import llguidance

    if not isinstance(schema, dict) and not isinstance(schema, bool):
        raise ConstraintRefused(f"{param} must be a JSON schema object", param, "invalid_schema")
    try:
        size = len(json.dumps(schema))
    except (TypeError, ValueError) as exc:
        raise ConstraintRefused(f"{param} is not JSON: {exc}", param, "invalid_schema") from exc
    if size > MAX_SCHEMA_BYTES:
        raise ConstraintRefused(f"{param} is {size} bytes serialised, more than the {MAX_SCHEMA_BYTES} the server "
                                "compiles", param, "schema_too_complex")
    if schema is False:
        raise ConstraintRefused(f"{param} is the schema false, which no output satisfies", param, "invalid_schema")
    if schema is True:
        schema = {}
    try:
        jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = keywords.join(param, *[p for p in exc.path])
        raise ConstraintRefused(f"{where} is not a valid JSON schema: {exc.message}", where, "invalid_schema") from exc
    except RecursionError as exc:
        raise ConstraintRefused(f"{param} is nested too deeply", param, "schema_too_complex") from exc
    try:
        normal = prepared_schema(schema, close_objects, bounds)
    except RecursionError as exc:
        raise ConstraintRefused(f"{param} is nested deeper than {keywords.MAX_DEPTH} levels", param,
                                "schema_too_complex") from exc
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(normal, overrides=json_limits.json_options(bounds))
    except ValueError as exc:
        raise ConstraintRefused(f"{param}: {exc}", param, "invalid_schema") from exc
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, None, limits=limits())
    if is_error:
        raise _refuse_json(normal, messages[0] if messages else "rejected", param)
    return grammar


def grammar_for(constraint: Any, param: str = "constraint", close_objects: bool = True) -> str:
    """The llguidance grammar of a :class:`localai.types.Constraint` (``json_schema``, ``grammar`` GBNF/Lark, ``regex``)."""
    import llguidance

    kind = constraint.type
    if kind == "json_schema":
        schema = constraint.json_schema if constraint.json_schema is not None else {"type": "object"}
        return json_schema_grammar(schema, param, close_objects, constraint.limits)
    if kind == "grammar":
        text = constraint.grammar or ""
        if not text.strip():
            raise ConstraintRefused("the grammar constraint carries no grammar", param, "invalid_schema")
        try:
            grammar = llguidance.grammar_from("grammar", text)
        except Exception as exc:  # noqa: BLE001 - the converter raises various types on bad input
            raise ConstraintRefused(f"cannot parse the grammar: {exc}", param, "invalid_schema") from exc
    elif kind == "regex":
        grammar = llguidance.LLMatcher.grammar_from_regex(getattr(constraint, "regex", None) or "")
    else:
        raise ConstraintRefused(f"unknown constraint type {kind!r}", param, "invalid_schema")
    err = llguidance.LLMatcher.validate_grammar(grammar, None, limits=limits())
    if err:
        raise ConstraintRefused(f"cannot compile the {kind}: {err}", param, "invalid_schema")
    return grammar


def check(constraint: Any, param: str = "constraint") -> None:
    """Server-side: refuse what cannot be enforced, before the request reaches a worker."""
    grammar_for(constraint, param)


@dataclass
class Compiled:
    """A grammar compiled against one tokenizer; :meth:`matcher` starts a sequence (a cheap copy)."""

    grammar: str
    tokenizer: Any
    _initial: Any
    caps: json_limits.Caps | None = None  # the JSON limits' token mask: digits and depth (``None``: none)

    def matcher(self) -> Any:
        from localai.constraints.matcher import Matcher

        limiter = None
        if self.caps is not None:
            limiter = json_limits.JsonLimiter(json_limits.token_classes(self.tokenizer), self.caps)
        return Matcher(self._initial.deep_copy(), self.tokenizer.vocab_size, limiter)


_cache: OrderedDict[tuple[int, str, Any], Compiled] = OrderedDict()
_cache_lock = threading.Lock()
CACHE_SIZE = 32


def compile_constraint(constraint: Any, tokenizer: Any, close_objects: bool = True) -> Compiled:
    """``constraint`` compiled against ``tokenizer`` (an ``llguidance.LLTokenizer``); recent ones are cached."""
    import llguidance

    grammar = grammar_for(constraint, close_objects=close_objects)
    caps = None
    if constraint.type == "json_schema":
        caps = json_limits.mask_caps(constraint.json_schema, constraint.limits)
    key = (id(tokenizer), grammar, caps)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit.tokenizer is tokenizer:
            _cache.move_to_end(key)
            return hit
    matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0, limits=limits())
    if matcher.is_error():
        err = matcher.get_error()
        code = "schema_too_complex" if any(w in err for w in ("limit", "fuel", "too", "size")) else "unsupported_schema"
        raise ConstraintRefused(f"cannot compile the constraint for this model: {err}", None, code)
    compiled = Compiled(grammar, tokenizer, matcher, caps)
    with _cache_lock:
        _cache[key] = compiled
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled
