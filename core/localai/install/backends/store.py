"""Reading what is installed: each backend folder's ``metadata.json``. Imports nothing from the environments."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

METADATA = "metadata.json"
VENV = "venv"


def interpreter_of(folder: Path) -> Path:
    return folder / VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def read(folder: Path) -> dict[str, Any]:
    """One backend's metadata with ``path``, ``interpreter`` (absolute) and ``unavailable`` (``None`` or why not)."""
    try:
        meta = json.loads((folder / METADATA).read_text())
        if not isinstance(meta, dict) or not isinstance(meta.get("backends"), list):
            raise ValueError("not a backend metadata object")
    except (OSError, ValueError) as exc:
        return {"name": folder.name, "alias": "", "aliases": [], "backends": [], "path": str(folder),
                "interpreter": str(interpreter_of(folder)),
                "unavailable": f"broken backend environment: cannot read {folder / METADATA}: {exc}; "
                               f"reinstall it (localai backends install --force ...) or uninstall it"}
    meta["name"] = folder.name
    meta["path"] = str(folder)
    python = interpreter_of(folder)
    meta["interpreter"] = str(python)
    meta["unavailable"] = None
    if not os.path.exists(python):  # follows the venv's symlink: a removed base interpreter counts as gone
        meta["unavailable"] = (f"the environment's interpreter {python} is missing or broken; "
                               f"reinstall with: localai backends install --force {meta.get('uri') or folder.name}")
    return meta


def installed(backends_path: Path | str) -> list[dict[str, Any]]:
    """Every installed backend environment, sorted by name; broken ones carry ``unavailable``."""
    root = Path(backends_path)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue  # .install-* / .remove-* work folders
        out.append(read(folder))
    return out


def find(backends_path: Path | str, name: str) -> dict[str, Any] | None:
    """The installed backend called ``name``, or whose alias or registered backend ``name`` is."""
    from localai.names import normalise

    key = normalise(name)
    metas = installed(backends_path)
    for meta in metas:
        if meta["name"] == key:
            return meta
    for meta in metas:
        names = {normalise(a) for a in meta.get("aliases") or []}
        if key in names:
            return meta
    return None
