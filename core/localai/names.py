"""Backend names: LocalAI's spelling rules, and names as folder names (validated, never a way out of the backends
folder). A leaf module: the registry, the environments and the galleries all spell names through it."""

from __future__ import annotations

import re
from pathlib import Path


def normalise(name: str) -> str:
    """LocalAI's spelling rules: case-insensitive, ``.`` and ``_`` count as ``-``."""
    return name.strip().lower().replace("_", "-").replace(".", "-")


NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class InvalidName(ValueError):
    """A backend name that cannot be a folder under the backends path."""


def validate_name(name: str) -> str:
    """The normalised name (LocalAI's spelling rules); :class:`InvalidName` for path separators, ``..`` and the like."""
    raw = str(name)
    if not raw.strip() or "/" in raw or "\\" in raw or ".." in raw or "\0" in raw:
        raise InvalidName(f"invalid backend name {name!r}: use letters, digits, '-', '_' or '.' (no path separators or '..')")
    norm = normalise(raw)
    if not NAME_RE.match(norm):
        raise InvalidName(f"invalid backend name {name!r}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit")
    return norm


def backend_dir(root: Path, name: str) -> Path:
    """``root/<name>``, checked to stay inside ``root``."""
    root = Path(root).resolve()
    path = (root / validate_name(name)).resolve()
    if path.parent != root:
        raise InvalidName(f"backend name {name!r} escapes the backends folder {root}")
    return path
