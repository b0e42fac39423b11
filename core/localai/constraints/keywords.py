"""Walking a JSON schema's subschemas with their paths: exact rewrites before compiling, and locating a keyword.

llguidance says *what* it cannot enforce ("Unimplemented keys: [...]", "Unknown format: x") but not *where*;
the client needs the where (``...properties.items.uniqueItems``), so refusals are located here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

# keyword -> how its value holds subschemas
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
SCHEMA_ONE = ("additionalProperties", "additionalItems", "items", "not", "if", "then", "else", "contains",
              "propertyNames", "unevaluatedProperties", "unevaluatedItems", "contentSchema")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")

MAX_DEPTH = 256  # deeper than any real schema; the walk (and the server) refuse beyond it


def join(path: str, *parts: str | int) -> str:
    for p in parts:
        path = f"{path}[{p}]" if isinstance(p, int) else f"{path}.{p}" if path else str(p)
    return path


def subschemas(schema: Any, path: str = "", depth: int = 0) -> Iterator[tuple[dict[str, Any], str]]:
    """Every subschema object (pre-order) with its path; raises ``RecursionError`` past ``MAX_DEPTH``."""
    if not isinstance(schema, dict):
        return
    if depth > MAX_DEPTH:
        raise RecursionError(path)
    yield schema, path
    for key in SCHEMA_MAPS:
        value = schema.get(key)
        if isinstance(value, dict):
            for name, sub in value.items():
                yield from subschemas(sub, join(path, key, name), depth + 1)
    for key in SCHEMA_ONE:
        value = schema.get(key)
        if isinstance(value, dict):
            yield from subschemas(value, join(path, key), depth + 1)
    for key in SCHEMA_LISTS:
        value = schema.get(key)
        if isinstance(value, list):
            for i, sub in enumerate(value):
                yield from subschemas(sub, join(path, key, i), depth + 1)


def find_key(schema: dict[str, Any], key: str, value: Any = None) -> str | None:
    """The path of the first subschema holding ``key`` (with ``value``, when given)."""
    for sub, path in subschemas(schema):
        if key in sub and (value is None or sub[key] == value):
            return join(path, key)
    return None


def normalize(schema: dict[str, Any], close_objects: bool = False) -> dict[str, Any]:
    """Exact rewrites (same accepted language) of things llguidance refuses or ignores.

    * ``uniqueItems: false`` asserts nothing: dropped (llguidance refuses the key whatever its value);
      ``uniqueItems: true`` with ``maxItems <= 1`` holds trivially: dropped.
    * ``nullable: true`` (OpenAPI 3.0, common in tool schemas) becomes ``null`` among the ``type``s.
    * a ``oneOf`` whose branches only list ``required`` properties (function-calling schemas: "exactly one of
      a, b") becomes an ``anyOf`` where each branch also forbids what would make another branch match.
    * ``dependentRequired`` (and draft-7 ``dependencies`` with arrays): "if a is present so are b, c" becomes
      ``anyOf: [a absent, required a, b, c]``, one per key, under ``allOf``.
    * a ``format`` JSON Schema does not define (``byte``, ``url``, ...) is an annotation by the spec (any string
      is valid): dropped. The spec's own formats are enforced, or refused where llguidance lacks them.

    ``close_objects`` narrows (never widens) the language the way llama.cpp's converter does: an object schema
    listing ``properties`` without saying anything about others gets ``additionalProperties: false``, so a
    model cannot wander off into invented keys. Objects merged through ``allOf`` are left open, and so is anything
    inside a ``oneOf`` branch (or a definition one reaches) unless the branches are told apart by a required
    ``const`` property (a discriminator, as in tool calls): narrowing one of two overlapping branches can make an
    instance that matched both match only one, which ``oneOf`` would then accept, i.e. closing would *widen*.
    """
    schema = copy.deepcopy(schema)
    merged = _merged_refs(schema) if close_objects else set()
    for sub, path in list(subschemas(schema)):
        if close_objects and _closable(sub, path, merged):
            sub["additionalProperties"] = False
        if sub.get("uniqueItems") is False or (sub.get("uniqueItems") is True and isinstance(sub.get("maxItems"), int)
                                                and sub["maxItems"] <= 1):
            del sub["uniqueItems"]
        if sub.get("nullable") is True:
            del sub["nullable"]
            t = sub.get("type")
            if isinstance(t, str) and t != "null":
                sub["type"] = [t, "null"]
            elif isinstance(t, list) and "null" not in t:
                sub["type"] = [*t, "null"]
            elif t is None and "enum" in sub and None not in sub["enum"]:
                sub["enum"] = [*sub["enum"], None]
        elif sub.get("nullable") is False:
            del sub["nullable"]
        fmt = sub.get("format")
        if isinstance(fmt, str) and fmt not in SPEC_FORMATS:
            del sub["format"]
        _dependent_required(sub)
        one = sub.get("oneOf")
        if isinstance(one, list) and one and all(_only_required(b) for b in one):
            rewritten = _exactly_one_required([b.get("required", []) for b in one])
            if rewritten is not None:
                del sub["oneOf"]
                if "anyOf" in sub or "allOf" in sub:
                    sub.setdefault("allOf", []).append({"anyOf": rewritten})
                else:
                    sub["anyOf"] = rewritten
    return schema


def _only_required(branch: Any) -> bool:
    return (isinstance(branch, dict) and set(branch) <= {"required", "description", "title", "type"}
            and branch.get("type", "object") == "object" and isinstance(branch.get("required", []), list))


def _exactly_one_required(sets: list[list[str]]) -> list[dict[str, Any]] | None:
    """``oneOf: [{required: R_i}]`` as ``anyOf``: R_i present and, for every other j, some key of R_j - R_i absent."""
    if len(sets) > 8:
        return None
    branches: list[dict[str, Any]] = []
    for i, ri in enumerate(sets):
        others = [[k for k in rj if k not in ri] for j, rj in enumerate(sets) if j != i]
        if any(not o for o in others):  # R_j is inside R_i: whenever i matches, j does too, so i never matches alone
            continue
        forbid = [{"anyOf": [{"properties": {k: False}} for k in o]} if len(o) > 1 else {"properties": {o[0]: False}}
                  for o in others]
        branch: dict[str, Any] = {"required": list(ri)}
        if forbid:
            branch["allOf"] = forbid
        branches.append(branch)
    if not branches:
        return None
    return branches


OPEN_KEYS = ("additionalProperties", "patternProperties", "unevaluatedProperties", "allOf", "$ref")


def ref_path(ref: Any) -> str | None:
    """A local ``$ref`` (``#/$defs/a``) as a dotted path (``$defs.a``); ``None`` for anything else."""
    return ".".join(ref[2:].split("/")) if isinstance(ref, str) and ref.startswith("#/") else None


def _merged_refs(schema: dict[str, Any]) -> set[str]:
    """Paths that must stay open, with everything under them: ``$defs`` entries merged by some ``allOf`` (closing
    them would forbid their siblings' keys); the branches of a ``oneOf`` without a discriminator, and the
    definitions reached from inside them, directly or through other definitions."""
    out: set[str] = set()
    pending: list[Any] = []
    for sub, where in subschemas(schema):
        for item in sub.get("allOf") or []:
            path = ref_path(item.get("$ref") if isinstance(item, dict) else None)
            if path:
                out.add(path)
        branches = sub.get("oneOf") or []
        if isinstance(branches, list) and not _discriminated(branches):
            pending.extend(b for b in branches if isinstance(b, dict))
            out.update(join(where, "oneOf", i) for i in range(len(branches)))  # the branches themselves
    in_one_of: set[str] = set()
    while pending:
        for sub, _ in subschemas(pending.pop()):
            path = ref_path(sub.get("$ref"))
            if path and path not in in_one_of:
                in_one_of.add(path)
                target = resolve(schema, path)
                if isinstance(target, dict):
                    pending.append(target)
    return out | in_one_of


def _discriminated(branches: list[Any]) -> bool:
    """Whether some property every branch requires has a ``const`` of its own in each: no instance matches two."""
    if not branches or not all(isinstance(b, dict) for b in branches):
        return False
    for key in set(branches[0].get("properties") or {}):
        values = []
        for b in branches:
            prop = (b.get("properties") or {}).get(key)
            if key not in (b.get("required") or []) or not isinstance(prop, dict) or "const" not in prop:
                break
            values.append(json.dumps(prop["const"], sort_keys=True))
        else:
            if len(set(values)) == len(values):
                return True
    return False


def resolve(schema: dict[str, Any], path: str) -> Any:
    """The subschema at a dotted path (:func:`ref_path`), or ``None``."""
    node: Any = schema
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _closable(sub: dict[str, Any], path: str, merged: set[str]) -> bool:
    props = sub.get("properties")
    if (not isinstance(props, dict) or any(k in sub for k in OPEN_KEYS) or "allOf[" in path
            or any(path == m or path.startswith(m + ".") for m in merged)):
        return False
    required = sub["required"] if isinstance(sub.get("required"), list) else []
    at_least = sub["minProperties"] if isinstance(sub.get("minProperties"), int) else 0
    # never close an object whose own rules need keys beyond ``properties``
    return all(k in props for k in required) and at_least <= len(props) and not _branch_needs_more(sub, props)


def _branch_needs_more(sub: dict[str, Any], props: dict[str, Any]) -> bool:
    for key in ("anyOf", "oneOf"):
        for branch in sub.get(key) or []:
            if isinstance(branch, dict) and (set(branch.get("properties") or {}) - set(props)
                                             or set(branch.get("required") or []) - set(props)):
                return True
    return False


# the formats JSON Schema 2020-12 defines; any other value of ``format`` asserts nothing
SPEC_FORMATS = frozenset({
    "date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname", "ipv4", "ipv6",
    "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template", "json-pointer",
    "relative-json-pointer", "regex"})


def _dependent_required(sub: dict[str, Any]) -> None:
    rules: dict[str, list[str]] = {}
    for key in ("dependentRequired", "dependencies"):
        value = sub.get(key)
        if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
            rules.update(value)
            del sub[key]
    clauses = [{"anyOf": [{"properties": {name: False}}, {"required": [name, *needs]}]}
               for name, needs in rules.items() if needs]
    if clauses:
        sub.setdefault("allOf", []).extend(clauses)
