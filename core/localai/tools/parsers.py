"""Streaming parsers that turn a model's raw output into text, reasoning and tool-call events.

One machine, configured per model family by :class:`CallSyntax` entries (where a call starts and
ends). Text outside calls streams as :class:`TextDelta`; ``<think>...</think>`` as
:class:`ReasoningDelta`; a call emits ``ToolCallStart`` once its name is read, argument pieces as
they decode, and ``ToolCallEnd`` with the whole arguments JSON. The concatenated deltas always
equal the final arguments, and no call markup ever reaches text.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from localai.events import Event, ReasoningDelta, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from localai.tools.scanner import WS, CallScanner


@dataclass(frozen=True)
class CallSyntax:
    """How one family marks a call: ``start`` (``""``: a bare JSON reply), an optional ``end``.

    ``strict``: the name must be an offered tool, else the text stays text (for unmarked JSON).
    ``named_args``: Mistral v11 writes ``[TOOL_CALLS]name[ARGS]{...}`` instead of JSON calls.
    """

    start: str
    end: str | None = None
    strict: bool = False
    named_args: bool = False


LEADING_JSON = CallSyntax("", strict=True)
HERMES = CallSyntax("<tool_call>", "</tool_call>")
FENCE = CallSyntax("```json", "```", strict=True)
PYTHON_TAG = CallSyntax("<|python_tag|>")
MISTRAL = CallSyntax("[TOOL_CALLS]", named_args=True)
ARGS_MARK = "[ARGS]"
THINK = ("<think>", "</think>")


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _partial_suffix(text: str, markers: list[str]) -> int:
    """Length of the longest end of ``text`` that could be the start of a marker."""
    best = 0
    for m in markers:
        for n in range(min(len(m) - 1, len(text)), best, -1):
            if text.endswith(m[:n]):
                best = n
                break
    return best


@dataclass
class _Open:
    """A call being streamed: its global index, and argument text emitted so far."""

    index: int
    emitted: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # argument text read before the name
    started: bool = False


class ToolCallParser:
    """The generic streaming parser; subclasses pick the syntaxes of their family.

    Create one per generation. :meth:`configure` tells it the offered tool names and how many
    calls to keep (one when parallel calls are off).
    """

    syntaxes: tuple[CallSyntax, ...] = ()
    leading: CallSyntax | None = LEADING_JSON
    reasoning: tuple[str, str] | None = THINK

    def __init__(self) -> None:
        self.tool_names: set[str] | None = None
        self.max_calls: int | None = None
        self.buf = ""
        self.mode = "text"  # text | reasoning | call | after | name
        self.syntax: CallSyntax | None = None
        self.scanner: CallScanner | None = None
        self.raw: list[str] = []  # what the current call region consumed (for falling back to text)
        self.open: dict[int, _Open] = {}  # scanner call index -> open call
        self.count = 0  # calls started
        self.seen_text = False
        self.pending_ws = ""
        self.strip_ws = False

    def configure(self, tool_names: list[str] | None = None, max_calls: int | None = None) -> ToolCallParser:
        self.tool_names = set(tool_names) if tool_names is not None else None
        self.max_calls = max_calls
        return self

    def open_reasoning(self) -> None:
        """The prompt already opened a thinking block (the template ended with ``<think>``)."""
        if self.reasoning:
            self.mode = "reasoning"

    @property
    def called_tools(self) -> bool:
        return self.count > 0

    # -- the public protocol -------------------------------------------------------------------

    def feed(self, text: str) -> list[Event]:
        self.buf += text
        out: list[Event] = []
        while getattr(self, "_" + self.mode)(out, False):
            pass
        return _merge(out)

    def finish(self) -> list[Event]:
        out: list[Event] = []
        while getattr(self, "_" + self.mode)(out, True):
            pass
        if self.mode == "text":
            self._text_out(self.buf, out)
            if self.pending_ws and not self.called_tools:
                out.append(TextDelta(self.pending_ws))
        elif self.mode == "reasoning" and self.buf:
            out.append(ReasoningDelta(self.buf))
        elif self.mode == "call":
            self._cut_short(out)
        self.buf, self.pending_ws = "", ""
        return _merge(out)

    # -- modes: each consumes what it can; True means "run again" -------------------------------

    def _markers(self) -> list[tuple[str, CallSyntax | None]]:
        found: list[tuple[str, CallSyntax | None]] = [(s.start, s) for s in self.syntaxes]
        if self.reasoning:
            found.append((self.reasoning[0], None))
        return found

    def _text(self, out: list[Event], final: bool) -> bool:
        buf = self.buf
        if self.strip_ws:
            buf = self.buf = buf.lstrip(WS)
            if not buf:
                return False
            self.strip_ws = False
        if not buf:
            return False
        markers = self._markers()
        hit: tuple[int, str, CallSyntax | None] | None = None
        for m, syntax in markers:
            i = buf.find(m)
            if i >= 0 and (hit is None or i < hit[0] or (i == hit[0] and len(m) > len(hit[1]))):
                hit = (i, m, syntax)
        if self.leading and not self.seen_text and self.count == 0:
            body = buf.lstrip(WS)
            if not body:
                return False if not final else self._flush_text(out)
            if not (hit is not None and hit[0] == len(buf) - len(body)):  # a marker there wins
                if not final and any(m.startswith(body) for m, _ in markers):
                    return False
                if body[0] in "{[":
                    self.buf = body
                    self._enter_call(self.leading, out)
                    return True
        if hit is not None:
            i, m, syntax = hit
            self._text_out(buf[:i], out)
            self.buf = buf[i + len(m):]
            if syntax is None:
                self.mode = "reasoning"
            else:
                self._enter_call(syntax, out)
            return True
        hold = 0 if final else _partial_suffix(buf, [m for m, _ in markers])
        if self.leading and not self.seen_text and self.count == 0 and not final:
            hold = max(hold, len(buf) - len(buf.rstrip(WS)))
        self._text_out(buf[: len(buf) - hold], out)
        self.buf = buf[len(buf) - hold:]
        return False

    def _flush_text(self, out: list[Event]) -> bool:
        self._text_out(self.buf, out)
        self.buf = ""
        return False

    def _reasoning(self, out: list[Event], final: bool) -> bool:
        assert self.reasoning
        close = self.reasoning[1]
        i = self.buf.find(close)
        if i >= 0:
            if i:
                out.append(ReasoningDelta(self.buf[:i]))
            self.buf = self.buf[i + len(close):]
            self.mode, self.strip_ws = "text", True
            return True
        hold = 0 if final else _partial_suffix(self.buf, [close])
        piece = self.buf[: len(self.buf) - hold]
        if piece and not final:
            out.append(ReasoningDelta(piece))
            self.buf = self.buf[len(piece):]
        return False

    def _enter_call(self, syntax: CallSyntax, out: list[Event]) -> None:
        self.syntax, self.raw, self.open = syntax, [syntax.start], {}
        self.scanner = CallScanner()
        self.mode = "name" if syntax.named_args else "call"

    def _name(self, out: list[Event], final: bool) -> bool:
        """Mistral v11: ``name[ARGS]{...}``; a JSON list right after the marker is the older format."""
        body = self.buf.lstrip(WS)
        if not body:
            return False
        if body[0] in "{[":
            self.buf, self.mode = body, "call"
            return True
        i = body.find(ARGS_MARK)
        if i < 0:
            return False
        name = body[:i].strip()
        self.buf = body[i + len(ARGS_MARK):]
        self.raw.append(body[: i + len(ARGS_MARK)])
        self.scanner = CallScanner(args_only=True)
        self.mode = "call"
        self._named(0, name, out)
        return True

    def _call(self, out: list[Event], final: bool) -> bool:
        assert self.scanner is not None and self.syntax is not None
        actions, used = self.scanner.feed(self.buf)
        self.raw.append(self.buf[:used])
        self.buf = self.buf[used:]
        for a in actions:
            if a.kind == "name":
                if not self._named(a.call, a.text or "", out):
                    return True
            elif a.kind == "args":
                call = self.open.setdefault(a.call, _Open(-1))
                (call.emitted if call.started else call.pending).append(a.text or "")
                if call.started:
                    self._delta(call, a.text or "", out)
            elif a.kind == "end":
                ending = self.open.get(a.call)
                if a.text is None or ending is None or not ending.started:
                    if ending is None or ending.index != -2:  # -2: dropped beyond max_calls
                        self._reject(out)
                        return True
                    continue
                self._end(ending, a.text, out)
            elif a.kind == "done":
                self.mode = "after"
                return True
            elif a.kind == "error":
                if any(c.started for c in self.open.values()):
                    self._cut_short(out)
                    self.mode, self.seen_text = "text", True
                else:
                    self._reject(out)
                return True
        return False

    def _after(self, out: list[Event], final: bool) -> bool:
        """Between a finished call and what follows: the end marker, another call, or text."""
        assert self.syntax is not None
        body = self.buf.lstrip(WS + ";")
        end = self.syntax.end
        if end and body.startswith(end):
            self.buf, self.mode, self.strip_ws = body[len(end):], "text", True
            return True
        if not final and (not body or (end and end.startswith(body))):
            return False
        if body[:1] == "{" and self.syntax.start:
            self.buf = body
            self._enter_call(self.syntax, out)
            self.mode = "call"
            return True
        self.buf, self.mode = body, "text"
        return bool(body)

    # -- calls ---------------------------------------------------------------------------------

    def _named(self, scanner_index: int, name: str, out: list[Event]) -> bool:
        """A call's name is known: start it, or reject the region when the name is not a tool."""
        assert self.syntax is not None
        if self.syntax.strict and self.tool_names is not None and name not in self.tool_names:
            self._reject(out)
            return False
        call = self.open.setdefault(scanner_index, _Open(-1))
        if self.max_calls is not None and self.count >= self.max_calls:
            call.index = -2
            return True
        call.index, call.started = self.count, True
        self.count += 1
        out.append(ToolCallStart(call.index, new_call_id(), name))
        pending, call.pending = "".join(call.pending), []
        if pending:
            call.emitted.append(pending)
            self._delta(call, pending, out)
        return True

    @staticmethod
    def _delta(call: _Open, text: str, out: list[Event]) -> None:
        if call.index >= 0 and text:
            out.append(ToolCallDelta(call.index, text))

    def _end(self, call: _Open, arguments: str, out: list[Event]) -> None:
        if call.index < 0:
            return
        emitted = "".join(call.emitted)
        if arguments.startswith(emitted):
            self._delta(call, arguments[len(emitted):], out)
        elif not emitted:
            self._delta(call, arguments, out)
        out.append(ToolCallEnd(call.index, arguments))
        call.index = -3  # closed

    def _cut_short(self, out: list[Event]) -> None:
        """Generation stopped inside a call: close a named one with the arguments it has."""
        assert self.scanner is not None
        done = self.scanner.cut_short()
        started = [c for c in self.open.values() if c.started and c.index >= 0]
        if done is not None and started:
            suffix, arguments = done
            call = started[-1]
            call.emitted.append(suffix)
            self._delta(call, suffix, out)
            self._end(call, arguments, out)
        elif not started and self.syntax is not None and self.syntax.strict:
            self._text_out("".join(self.raw) + self.buf, out)
            self.buf = ""

    def _reject(self, out: list[Event]) -> None:
        """The region is not a call after all: give its text back (unless calls already came from it)."""
        if not any(c.started for c in self.open.values()):
            self._text_out("".join(self.raw), out)
        self.raw, self.open, self.mode, self.seen_text = [], {}, "text", True

    def _text_out(self, text: str, out: list[Event]) -> None:
        """Emit text; trailing whitespace waits for more text, so calls don't come with stray newlines."""
        if not text:
            return
        text = self.pending_ws + text
        body = text.rstrip(WS)
        self.pending_ws = text[len(body):]
        if body:
            self.seen_text = True
            out.append(TextDelta(body))


def _merge(events: list[Event]) -> list[Event]:
    """Join neighbouring pieces of the same kind so each feed yields few events."""
    merged: list[Event] = []
    for ev in events:
        last = merged[-1] if merged else None
        if isinstance(ev, TextDelta) and isinstance(last, TextDelta) and not ev.logprobs and not last.logprobs:
            last.text += ev.text
        elif isinstance(ev, ReasoningDelta) and isinstance(last, ReasoningDelta):
            last.text += ev.text
        elif isinstance(ev, ToolCallDelta) and isinstance(last, ToolCallDelta) and last.index == ev.index:
            last.arguments += ev.arguments
        else:
            merged.append(ev)
    return merged


class TextParser(ToolCallParser):
    """No tools offered: text and reasoning only."""

    leading = None


class GenericParser(ToolCallParser):
    """Every known markup; used with the built-in tool prompt (which asks for a bare JSON call)."""

    syntaxes = (HERMES, PYTHON_TAG, MISTRAL, FENCE)


class HermesParser(ToolCallParser):
    """Hermes / Qwen: ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``."""

    syntaxes = (HERMES,)


class Llama3Parser(ToolCallParser):
    """Llama 3.x: a bare ``{"name": ..., "parameters": ...}`` or ``<|python_tag|>{...}; {...}``."""

    syntaxes = (PYTHON_TAG,)


class MistralParser(ToolCallParser):
    """Mistral: ``[TOOL_CALLS][{...}, ...]`` or (v11 tokenizers) ``[TOOL_CALLS]name[ARGS]{...}``."""

    syntaxes = (MISTRAL,)


class JsonParser(ToolCallParser):
    """A bare JSON call or list of calls, possibly fenced as a ```json block."""

    syntaxes = (FENCE,)


class ConstrainedParser(ToolCallParser):
    """Output under a tool-call grammar: exactly a JSON call (or list of calls); names are trusted."""

    leading = CallSyntax("")
    reasoning = None
