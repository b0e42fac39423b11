"""An incremental JSON reader for tool calls, so a call's name and arguments stream as they decode.

It reads one JSON value, character by character: a call object ``{"name": ..., "arguments": {...}}``
(``parameters`` / ``args`` / ``input`` are accepted for ``arguments``; OpenAI's nested
``{"function": {...}}`` too) or an array of them. In ``args_only`` mode the value *is* the
arguments of a call whose name came from elsewhere (Mistral's ``name[ARGS]{...}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

ARG_KEYS = ("arguments", "parameters", "args", "input")
WS = " \t\r\n"


@dataclass
class Action:
    """What the scanner found: ``name`` (a call's name is known), ``args`` (a piece of raw
    argument text), ``end`` (a call closed; ``text`` is its arguments JSON or ``None`` if it was
    no call), ``done`` (the whole value closed) or ``error`` (not JSON we understand)."""

    kind: str
    call: int = 0
    text: str | None = None


@dataclass
class _Call:
    name: str | None = None
    args: str | None = None  # the complete raw arguments value once read
    args_is_string: bool = False
    streamed: list[str] = field(default_factory=list)


class CallScanner:
    def __init__(self, args_only: bool = False) -> None:
        self.args_only = args_only
        self.stack: list[str] = []  # open containers
        self.in_str = False
        self.esc = False
        self.top: str | None = None
        self.state = "start"  # start | key | keystr | colon | value_start | value | between | done
        self.key: list[str] = []
        self.cur_key: str | None = None
        self.value: list[str] = []
        self.value_kind = ""  # container | string | primitive
        self.calls: list[_Call] = []

    # -- helpers -------------------------------------------------------------------------------

    @property
    def call_depth(self) -> int:
        return 1 if self.top == "{" else 2

    @property
    def current(self) -> _Call:
        return self.calls[-1]

    def _streams_args(self) -> bool:
        return self.cur_key in ARG_KEYS and self.value_kind == "container"

    def _string(self, c: str) -> bool:
        """Advance string state for ``c``; True while inside a string (``c`` included)."""
        if not self.in_str:
            return False
        if self.esc:
            self.esc = False
        elif c == "\\":
            self.esc = True
        elif c == '"':
            self.in_str = False
        return True

    def _nest(self, c: str) -> bool | None:
        """Track JSON nesting outside strings: True when ``c`` closed a container, None for a closer that matches
        no opener (not JSON: the text is no tool call), else False."""
        if c == '"':
            self.in_str = True
        elif c in "{[":
            self.stack.append(c)
        elif c in "}]":
            if not self.stack or {"}": "{", "]": "["}[c] != self.stack[-1]:
                return None
            self.stack.pop()
            return True
        return False

    # -- the machine ---------------------------------------------------------------------------

    def feed(self, text: str) -> tuple[list[Action], int]:
        """Actions found in ``text`` and how many characters were consumed (all, unless done/error)."""
        out: list[Action] = []
        for i, c in enumerate(text):
            if self.state == "done":
                return out, i
            if not self._step(c, out):
                out.append(Action("error"))
                return out, i + 1
        return out, len(text)

    def _step(self, c: str, out: list[Action]) -> bool:
        if self.args_only:
            return self._step_args_only(c, out)
        st = self.state
        if st == "start":
            if c in WS:
                return True
            if c not in "{[":
                return False
            self.top = c
            self.stack.append(c)
            if c == "{":
                self._begin_call()
            else:
                self.state = "between"
            return True
        if st == "between":  # inside the top-level array, between call objects
            if c in WS or c == ",":
                return True
            if c == "]":
                self.stack.pop()
                self.state = "done"
                out.append(Action("done"))
                return True
            if c == "{":
                self.stack.append(c)
                self._begin_call()
                return True
            return False
        if st == "keystr":
            if self._string(c):
                if self.in_str:
                    self.key.append(c)
                else:
                    try:
                        self.cur_key = json.loads('"' + "".join(self.key) + '"')
                    except json.JSONDecodeError:
                        return False
                    self.state = "colon"
                return True
            return False
        if st == "value":
            return self._step_value(c, out)
        if st == "key":
            if c in WS or c == ",":
                return True
            if c == '"':
                self.in_str, self.key = True, []
                self.state = "keystr"
                return True
            if c == "}":
                self._end_call(out)
                return True
            return False
        if st == "colon":
            if c in WS:
                return True
            if c == ":":
                self.state = "value_start"
                return True
            return False
        if st == "value_start":
            if c in WS:
                return True
            self.value = [c]
            self.state = "value"
            if c in "{[":
                self.value_kind = "container"
                self.stack.append(c)
            elif c == '"':
                self.value_kind = "string"
                self.in_str = True
            else:
                self.value_kind = "primitive"
            if self._streams_args():
                self._arg_piece(c, out)
            return True
        return False

    def _step_value(self, c: str, out: list[Action]) -> bool:
        kind = self.value_kind
        if kind == "primitive":
            if c in WS or c in ",}":
                self._value_done(out)
                return self._step(c, out) if c == "}" else True
            self.value.append(c)
            return True
        self.value.append(c)
        if self._streams_args():
            self._arg_piece(c, out)
        if self._string(c):
            if kind == "string" and not self.in_str:
                self._value_done(out)
            return True
        closed = self._nest(c)
        if closed is None:
            return False
        if closed and len(self.stack) == self.call_depth:
            self._value_done(out)
        return True

    def _step_args_only(self, c: str, out: list[Action]) -> bool:
        if self.state == "start":
            if c in WS:
                return True
            if c not in "{[":
                return False
            self.top = "{"  # call_depth 1: the value ends when the stack empties
            self.calls.append(_Call(name=""))
            self.stack.append(c)
            self.value, self.value_kind, self.cur_key, self.state = [c], "container", "arguments", "value"
            self._arg_piece(c, out)
            return True
        self.value.append(c)
        self._arg_piece(c, out)
        if self._string(c):
            return True
        closed = self._nest(c)
        if closed is None:
            return False
        if closed and not self.stack:
            self.current.args = "".join(self.value)
            out.append(Action("end", len(self.calls) - 1, self.current.args))
            self.state = "done"
            out.append(Action("done"))
        return True

    # -- call bookkeeping ----------------------------------------------------------------------

    def _begin_call(self) -> None:
        self.calls.append(_Call())
        self.state = "key"

    def _arg_piece(self, c: str, out: list[Action]) -> None:
        self.current.streamed.append(c)
        out.append(Action("args", len(self.calls) - 1, c))

    def _value_done(self, out: list[Action]) -> None:
        raw = "".join(self.value)
        call, key = self.current, self.cur_key
        self.state = "key"
        if key == "name" and self.value_kind == "string" and call.name is None:
            try:
                call.name = json.loads(raw)
            except json.JSONDecodeError:
                return
            out.append(Action("name", len(self.calls) - 1, call.name))
        elif key in ARG_KEYS and call.args is None:
            call.args = raw
            call.args_is_string = self.value_kind == "string"
        elif key == "function" and self.value_kind == "container":
            try:
                inner = json.loads(raw)
            except json.JSONDecodeError:
                return
            if isinstance(inner, dict) and isinstance(inner.get("name"), str) and call.name is None:
                call.name = inner["name"]
                out.append(Action("name", len(self.calls) - 1, call.name))
                args = inner.get("arguments", inner.get("parameters", {}))
                call.args_is_string = isinstance(args, str)
                call.args = json.dumps(args, ensure_ascii=False)

    def _end_call(self, out: list[Action]) -> None:
        self.stack.pop()
        idx = len(self.calls) - 1
        out.append(Action("end", idx, self.arguments(self.current) if self.current.name is not None else None))
        if not self.stack:
            self.state = "done"
            out.append(Action("done"))
        else:
            self.state = "between"

    @staticmethod
    def arguments(call: _Call) -> str:
        """The call's arguments as a JSON string (an object when the model gave none)."""
        if call.args is None:
            return "{}"
        raw = call.args
        if call.args_is_string:
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                return "{}"
        try:
            json.loads(raw)
        except json.JSONDecodeError:
            return "{}"
        return raw

    def cut_short(self) -> tuple[str, str] | None:
        """For a named call cut short (max_tokens): ``(suffix, arguments)`` where ``suffix`` closes
        the streamed argument text when that makes it valid JSON; ``None`` if no named call is open."""
        if not self.calls or self.state == "done" or self.current.name is None:
            return None
        call = self.current
        if call.args is not None:
            return "", self.arguments(call)
        if self.state == "value" and self._streams_args():
            inner = self.stack if self.args_only else self.stack[self.call_depth:]
            closers = "".join({"{": "}", "[": "]"}[c] for c in reversed(inner))
            streamed = "".join(call.streamed)
            for filler in ("", '"', "null", ": null", '": null', '"": null'):  # whatever the cut left open
                try:
                    json.loads(streamed + filler + closers)
                except json.JSONDecodeError:
                    continue
                return filler + closers, streamed + filler + closers
        return "", "{}"
