"""Feeding recorded model outputs to a parser in pieces, and checking the event-stream invariants."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from localai.events import ReasoningDelta, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from localai.tools.parsers import ToolCallParser


@dataclass
class Parsed:
    text: str = ""
    reasoning: str = ""
    calls: list[tuple[str, dict]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


def run(parser: ToolCallParser, chunks: list[str]) -> Parsed:
    """Parse ``chunks`` and assert what every stream must satisfy, whatever the split."""
    events = []
    for c in chunks:
        events.extend(parser.feed(c))
    events.extend(parser.finish())
    out = Parsed()
    started: dict[int, str] = {}
    deltas: dict[int, str] = {}
    ended: set[int] = set()
    for ev in events:
        if isinstance(ev, TextDelta):
            out.text += ev.text
        elif isinstance(ev, ReasoningDelta):
            out.reasoning += ev.text
        elif isinstance(ev, ToolCallStart):
            assert ev.index == len(started), "indices count up from 0"
            assert ev.id.startswith("call_") and ev.id not in out.ids
            started[ev.index] = ev.name
            deltas[ev.index] = ""
            out.ids.append(ev.id)
        elif isinstance(ev, ToolCallDelta):
            assert ev.index in started and ev.index not in ended, "deltas come between start and end"
            deltas[ev.index] += ev.arguments
        elif isinstance(ev, ToolCallEnd):
            assert ev.index in started and ev.index not in ended
            ended.add(ev.index)
            assert deltas[ev.index] == ev.arguments, "the deltas add up to the final arguments"
            out.calls.append((started[ev.index], json.loads(ev.arguments)))
    assert ended == set(started), "every started call ends"
    assert parser.called_tools == bool(started)
    return out


def splits(text: str) -> list[list[str]]:
    """The text whole, one character at a time, in threes, and cut in two at every position."""
    ways = [[text], list(text), [text[i:i + 3] for i in range(0, len(text), 3)]]
    ways += [[text[:i], text[i:]] for i in range(1, len(text))]
    return ways
