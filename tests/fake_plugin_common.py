"""What the test-only fake backends (``fake_backend``, ``fake_image_backend``) share: their log and the
``name:number`` options they accept. Plain functions, not hooks: each backend keeps its own per-hook
``@hookimpl`` functions (the deprecated plugin form that they test), which call these."""

from __future__ import annotations

import os


def log(line: str) -> None:
    """Append ``line`` to ``$FAKE_BACKEND_LOG`` (if set), so tests can see what happened inside the worker."""
    path = os.environ.get("FAKE_BACKEND_LOG")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def number_options(options: list[str], allowed: tuple[str, ...]) -> dict[str, float]:
    """A model's ``options:`` list (``name:value`` entries) as numbers; a name not in ``allowed`` is an error."""
    out: dict[str, float] = {}
    for entry in options:
        name, _, value = entry.partition(":")
        if name not in allowed:
            raise ValueError(f"unknown option {name!r}")
        out[name] = float(value)
    return out
