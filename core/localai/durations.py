"""Go/Ollama-style durations (``"5m"``, ``"1h30m"``, ``"500ms"``) for flags, env vars and YAML fields.

Kept apart from the lifecycle code so the CLI can parse its flags without importing the server.
"""

from __future__ import annotations

import re
from typing import Any

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")


def parse_duration(value: Any) -> float:
    """Seconds in a Go/Ollama duration: ``"5m"``, ``"1h30m"``, ``"500ms"``, ``"-1"``; a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError(f"duration must be a number of seconds or a string like '5m', not {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    total, pos = 0.0, 0
    for m in _PART.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f"invalid duration {value!r}: use seconds or a duration like '30s', '5m', '1h30m'")
    return sign * total


def format_duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
