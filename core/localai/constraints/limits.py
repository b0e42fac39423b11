"""How a JSON answer may be written where its schema is silent: digits of numbers, whitespace, string length.

A JSON schema bounds *values*, not how long their text is: ``{"type": "number"}`` allows ``4200000000…`` and
``0.0000000…`` of any length, and a small model that has started a number keeps choosing ``0`` until
``max_tokens`` (35 of 60 JSONSchemaBench answers on Gemma 3 270M were cut that way). So the one constraint engine
applies :class:`~localai.types.JsonLimits` to every JSON-schema constraint, on every backend that masks tokens
with it:

* **digits** of a number's integer part, fraction and exponent (defaults 16, 20 and 3). A double holds every
  integer of up to 16 digits exactly (2^53 is about 9.0e15) and carries 15-17 significant digits, so longer
  literals are noise; llama.cpp's JSON-schema converter caps both parts at 16 digits. The fraction gets 20 so
  that any double as Python writes it (``repr``: at most 17 significant digits, and fixed notation only down to
  1e-4, i.e. at most 3 leading zeros) stays writable; the exponent gets 3 (doubles reach 1e308). These are
  enforced as a token mask on top of the grammar's (:class:`JsonLimiter`) because llguidance's JSON compiler
  has no bound on a number's length (a ``minimum``/``maximum`` bounds only the integer part, and removes the
  exponent form). The schema's own numbers always win: a ``maximum`` of ``1e20``, an ``enum`` member with 25
  fraction digits or a ``multipleOf`` of ``1e-30`` raises that request's limit to what they need, and where
  the grammar allows nothing but another digit (its own bound needs it) the limit steps aside.
* **whitespace** between JSON tokens: ``spaced`` by default (``{"a": 1, "b": [1, 2]}``, exactly what
  ``json.dumps`` writes), so no token is spent on layout and a model cannot stall in newlines; ``compact`` drops
  the spaces, ``flexible`` is llama.cpp's rule (a space, or one line break and up to 20 spaces/tabs of indent,
  between any two tokens).
* **nesting depth** of objects and arrays: 20 by default. A model that has started nesting (``{"data": {"data":
  …``) where the schema allows any object goes on until ``max_tokens``; none of JSONSchemaBench's 13,964 valid
  test instances nests deeper than 20 (2 deeper than 16). Enforced by the same token mask as the digits (no
  ``{`` or ``[`` at the limit), raised to the depth the schema's own structure needs.
* **string length** and **array items** where the schema gives no ``maxLength`` / ``maxItems`` (strings with a
  ``pattern``, ``format``, ``enum`` or ``const`` are left alone): off by default (``0``): a cap a user did not ask
  for would silently cut long text or lists they wanted; when set, a ``maxLength`` / ``maxItems`` is added to the
  schema (never below its ``minLength`` / ``minItems``).

The limits come from the request (the ``json_limits`` extension field), over the model's YAML ``json_limits:``,
over :data:`DEFAULTS`; ``0`` turns one off.
"""

from __future__ import annotations

import copy
import threading
from decimal import Decimal, InvalidOperation
from typing import Any

from localai.constraints import keywords
from localai.types import JsonLimits

DEFAULTS = JsonLimits(max_integer_digits=16, max_fraction_digits=20, max_exponent_digits=3, max_string_length=0,
                      max_items=0, max_depth=20, whitespace="spaced")

# Between JSON tokens under ``flexible``: nothing, one space, or one line break plus up to 20 spaces/tabs of
# indent (llama.cpp's rule). Unbounded whitespace lets a small model stall in newlines until max_tokens.
FLEXIBLE_WHITESPACE = r"(?:\n[ \t]{0,20}| )?"
_BASE_OPTIONS = {"lenient": False, "coerce_one_of": False}
_WHITESPACE_OPTIONS: dict[str, dict[str, Any]] = {
    "compact": {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"},
    "spaced": {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "},
    "flexible": {"whitespace_pattern": FLEXIBLE_WHITESPACE},
}


def resolve(*layers: JsonLimits | None) -> JsonLimits:
    """Every field set: the first layer that sets it wins (request, then model), else :data:`DEFAULTS`."""
    out = DEFAULTS
    for layer in reversed([x for x in layers if x is not None]):
        out = layer.over(out)
    return out


def json_options(limits: JsonLimits | None = None) -> Any:
    """llguidance's JSON compile options for ``limits``' whitespace (its ``JsonCompileOptions`` dict)."""
    whitespace = resolve(limits).whitespace or "spaced"
    return {**_BASE_OPTIONS, **_WHITESPACE_OPTIONS[whitespace]}


def _has_type(sub: dict[str, Any], name: str) -> bool:
    t = sub.get("type")
    return t == name or (isinstance(t, list) and name in t)


def bound_sizes(schema: Any, limits: JsonLimits | None = None) -> Any:
    """``schema`` with ``maxLength`` on every free string schema and ``maxItems`` on every unbounded array schema
    (a copy; unchanged when both limits are 0)."""
    lim = resolve(limits)
    chars, items = lim.max_string_length or 0, lim.max_items or 0
    if (chars <= 0 and items <= 0) or not isinstance(schema, dict):
        return schema
    schema = copy.deepcopy(schema)
    for sub, _ in list(keywords.subschemas(schema)):
        if chars > 0 and _has_type(sub, "string") and not any(
                k in sub for k in ("maxLength", "pattern", "format", "enum", "const")):
            sub["maxLength"] = max(chars, sub["minLength"] if isinstance(sub.get("minLength"), int) else 0)
        if items > 0 and _has_type(sub, "array") and "maxItems" not in sub:
            least = sub["minItems"] if isinstance(sub.get("minItems"), int) else 0
            fixed = len(sub["prefixItems"]) if isinstance(sub.get("prefixItems"), list) else 0
            sub["maxItems"] = max(items, least, fixed)
    return schema


# -- digits -------------------------------------------------------------------------------------------

NUMERIC_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def _digits_of(value: Any) -> tuple[int, int]:
    """(integer digits, fraction digits) of ``value`` written out in fixed notation."""
    try:
        d = Decimal(str(value)).normalize()
    except (InvalidOperation, ValueError):
        return 0, 0
    if not d.is_finite():
        return 0, 0
    sign, digits, exp = d.as_tuple()
    n = len(digits)
    assert isinstance(exp, int)
    return max(1, n + exp), max(0, -exp)


def _numbers_in(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, list):
        return [n for v in value for n in _numbers_in(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers_in(v)]
    return []


def schema_digits(schema: Any) -> tuple[int, int]:
    """The most integer and fraction digits the schema's own numbers need written out (bounds, consts, enums)."""
    need_int = need_frac = 0
    if not isinstance(schema, dict):
        return 0, 0
    for sub, _ in keywords.subschemas(schema):
        values = [sub[k] for k in NUMERIC_KEYWORDS if k in sub and not isinstance(sub[k], bool)]
        values += _numbers_in(sub.get("const")) + _numbers_in(sub.get("enum"))
        for v in values:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                i, f = _digits_of(v)
                need_int, need_frac = max(need_int, i), max(need_frac, f)
    return need_int, need_frac


def schema_depth(schema: Any) -> int:
    """How deep the schema's own structure nests objects and arrays (``$ref`` cycles counted once)."""
    if not isinstance(schema, dict):
        return 0
    memo: dict[str, int] = {}  # each definition's depth, computed once (0 while in progress: a cycle adds nothing)

    def walk(node: Any, level: int) -> int:
        if not isinstance(node, dict) or level > keywords.MAX_DEPTH:
            return 0
        best = 0
        ref = keywords.ref_path(node.get("$ref"))
        if ref is not None:
            if ref not in memo:
                memo[ref] = 0
                memo[ref] = walk(keywords.resolve(schema, ref), level)
            best = memo[ref]
        for key in ("anyOf", "oneOf", "allOf"):
            for branch in node.get(key) or []:
                best = max(best, walk(branch, level))
        children = [*(node.get("properties") or {}).values(), *(node.get("patternProperties") or {}).values(),
                    *(node.get("prefixItems") or [])]
        for key in ("items", "additionalProperties", "additionalItems"):
            if isinstance(node.get(key), dict):
                children.append(node[key])
        if children or _has_type(node, "object") or _has_type(node, "array"):
            best = max(best, 1 + max((walk(c, level + 1) for c in children), default=0))
        return best

    return walk(schema, 0)


Caps = tuple[int | None, int | None, int | None, int | None]  # integer, fraction, exponent digits, depth; None: unbounded


def mask_caps(schema: Any, limits: JsonLimits | None = None) -> Caps | None:
    """The limits a request's matcher applies as a token mask (digits of each number part and nesting depth),
    raised to what the schema's own numbers and structure need; ``None``: none."""
    lim = resolve(limits)
    need_int, need_frac = schema_digits(schema)

    def cap(value: int | None, need: int) -> int | None:
        return None if not value else max(value, need)

    caps = (cap(lim.max_integer_digits, need_int), cap(lim.max_fraction_digits, need_frac),
            cap(lim.max_exponent_digits, 0), cap(lim.max_depth, schema_depth(schema) if lim.max_depth else 0))
    return None if caps == (None, None, None, None) else caps


def describe(limits: JsonLimits | None) -> str:
    """The limits in force, for logs: ``integer digits 16, fraction digits 20, exponent digits 3, ...``."""
    lim = resolve(limits)
    show = lambda v: str(v) if v else "unlimited"  # noqa: E731
    return (f"integer digits {show(lim.max_integer_digits)}, fraction digits {show(lim.max_fraction_digits)}, "
            f"exponent digits {show(lim.max_exponent_digits)}, depth {show(lim.max_depth)}, "
            f"string length {show(lim.max_string_length)}, array items {show(lim.max_items)}, "
            f"whitespace {lim.whitespace}")


OUTSIDE, IN_STRING, ESCAPED = 0, 1, 2  # where a token starts, for whether it opens an object or array


def _opens(data: bytes, state: int) -> bool:
    """Whether ``data``, read from ``state``, opens an object or array outside a string (``": {"`` does)."""
    in_string, escape = state != OUTSIDE, state == ESCAPED
    for c in data:
        if in_string:
            if escape:
                escape = False
            elif c == 0x5C:
                escape = True
            elif c == 0x22:
                in_string = False
            continue
        if c in (0x5B, 0x7B):
            return True
        if c == 0x22:
            in_string = True
    return False


class TokenClasses:
    """Per tokenizer: how many digits each token starts with, and which tokens open an object or array from each
    lexical state, as packed masks in the matcher's layout (one pass over the vocabulary per loaded model)."""

    def __init__(self, tokenizer: Any) -> None:
        import numpy as np

        n = tokenizer.vocab_size
        lead = np.zeros(n, dtype=np.int32)
        openers: list[tuple[int, bytes]] = []
        for t in range(n):
            b = tokenizer.decode_bytes([t])
            k = 0
            while k < len(b) and 48 <= b[k] <= 57:
                k += 1
            lead[t] = k
            if b"{" in b or b"[" in b:
                openers.append((t, b))
        self.n = n
        self.lead = lead
        self.max_lead = int(lead.max()) if n else 0
        self.opens = np.zeros((3, n), dtype=np.bool_)  # [state, token]
        for t, b in openers:
            for state in (OUTSIDE, IN_STRING, ESCAPED):
                self.opens[state, t] = _opens(b, state)
        self._forbid: dict[int, Any] = {}
        self._lock = threading.Lock()
        self.tokenizer = tokenizer
        self.opening = [self._pack(self.opens[state]) for state in (OUTSIDE, IN_STRING, ESCAPED)]

    def _pack(self, flags: Any) -> Any:
        import numpy as np

        bits = np.zeros(((self.n + 31) // 32) * 32, dtype=np.uint8)
        bits[: self.n] = flags
        return np.packbits(bits, bitorder="little").view(np.int32)

    def forbid(self, room: int) -> Any:
        """Packed int32 words (the matcher's mask layout): bit set = the token starts with more than ``room`` digits."""
        with self._lock:
            words = self._forbid.get(room)
            if words is None:
                words = self._forbid[room] = self._pack(self.lead > room)
            return words

    def token_bytes(self, token: int) -> bytes:
        return self.tokenizer.decode_bytes([int(token)])


_tables: dict[int, TokenClasses] = {}
_tables_lock = threading.Lock()


def token_classes(tokenizer: Any) -> TokenClasses:
    with _tables_lock:
        table = _tables.get(id(tokenizer))
        if table is None or table.tokenizer is not tokenizer:
            table = _tables[id(tokenizer)] = TokenClasses(tokenizer)
        return table


IDLE, INTEGER, FRACTION, EXPONENT = 0, 1, 2, 3


class JsonLimiter:
    """Follows the JSON text a sequence has written (inside a string or not, which part of a number and how many
    digits it has, how deep in objects and arrays) and narrows the next-token mask so the current number part gets
    no more digits than its cap and nothing opens past the depth cap.

    Exact for vocabularies that give each digit its own token (Gemma, Llama 2, Qwen, Mistral); with multi-digit
    tokens a number may start with one token's worth of digits over the cap before the next token is held to it,
    and a token that opens two containers at once may pass the depth cap by one.
    """

    __slots__ = ("table", "caps", "depth_cap", "in_string", "escape", "part", "digits", "depth")

    def __init__(self, table: TokenClasses, caps: Caps) -> None:
        self.table = table
        self.caps = (None, *caps[:3])
        self.depth_cap = caps[3]
        self.in_string = False
        self.escape = False
        self.part = IDLE
        self.digits = 0
        self.depth = 0

    def feed(self, data: bytes) -> None:
        for c in data:
            if self.in_string:
                if self.escape:
                    self.escape = False
                elif c == 0x5C:  # backslash
                    self.escape = True
                elif c == 0x22:
                    self.in_string = False
                continue
            if 0x30 <= c <= 0x39:
                if self.part == IDLE:
                    self.part, self.digits = INTEGER, 1
                else:
                    self.digits += 1
            elif c == 0x2D and self.part == IDLE:  # a minus sign starts a number
                self.part, self.digits = INTEGER, 0
            elif c in (0x2B, 0x2D) and self.part == EXPONENT and self.digits == 0:
                pass  # the exponent's sign
            elif c == 0x2E and self.part == INTEGER:
                self.part, self.digits = FRACTION, 0
            elif c in (0x45, 0x65) and self.part in (INTEGER, FRACTION):
                self.part, self.digits = EXPONENT, 0
            else:
                self.part = IDLE
                if c == 0x22:
                    self.in_string = True
                elif c in (0x5B, 0x7B):
                    self.depth += 1
                elif c in (0x5D, 0x7D):
                    self.depth -= 1

    def consumed(self, token: int) -> None:
        self.feed(self.table.token_bytes(token))

    def room(self) -> int | None:
        """Digits the current part may still take (``None``: not in a number, or that part is unbounded)."""
        cap = self.caps[self.part]
        if cap is None:
            return None
        return max(0, cap - self.digits)

    def _deep(self) -> bool:
        return self.depth_cap is not None and self.depth >= self.depth_cap

    def _state(self) -> int:
        return ESCAPED if self.escape else IN_STRING if self.in_string else OUTSIDE

    def narrow(self, words: Any) -> None:
        """Clear, in ``words`` (the grammar's packed mask), the tokens that would overrun the current number part or
        the depth; left as it is when nothing else would remain (the schema itself needs that digit or level)."""
        import numpy as np

        room = self.room()
        digits = room is not None and room < self.table.max_lead
        deep = self._deep()
        if not digits and not deep:
            return
        opening = self.table.opening[self._state()]
        forbidden = self.table.forbid(room) if room is not None and digits else opening
        if digits and deep:
            forbidden = np.bitwise_or(forbidden, opening)
        narrowed = np.bitwise_and(words, np.invert(forbidden[: len(words)]))
        if narrowed.any():
            words[:] = narrowed

    def forbids(self, token: int) -> bool:
        room = self.room()
        t = int(token)
        return (room is not None and int(self.table.lead[t]) > room) or (self._deep() and bool(self.table.opens[self._state(), t]))
