"""Decoding constraints -> GBNF text, with llama-cpp-python's JSON-schema converter loaded standalone.

ik_llama.cpp parses and enforces GBNF grammars itself, but has no JSON-schema converter. llama-cpp-python
ships llama.cpp's pure-Python one (``json_schema_to_gbnf`` in ``llama_cpp/llama_grammar.py``). We must not
``import llama_cpp`` for it: that package loads the stock ``libllama.so`` at import time, and a second,
different libllama in the ik worker process (same C symbol names, different ABI) is asking for crashes.
So the file is located with ``find_spec`` (which does not import a top-level package) and executed on its
own under a private module name; it has no top-level import of ``llama_cpp`` (checked against 0.3.36).

No engine import here: the server process may use :func:`converter_available`.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

MODULE_NAME = "_localai_ik_llama_gbnf"
MISSING = ("ik-llama-cpp needs llama-cpp-python's JSON-schema to GBNF converter for JSON-schema constraints "
           "(tools, response_format); it is not installed (pip install llama-cpp-python)")

_converter: ModuleType | None = None


def converter_path() -> Path | None:
    """Where ``llama_cpp/llama_grammar.py`` is, without importing ``llama_cpp`` (``None`` when absent)."""
    try:
        spec = importlib.util.find_spec("llama_cpp")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "llama_grammar.py"
        if path.is_file():
            return path
    return None


def converter_available() -> bool:
    return converter_path() is not None


def load_converter() -> ModuleType:
    """llama-cpp-python's ``llama_grammar.py`` as a private module; ``NotImplementedError`` when not installed."""
    global _converter
    if _converter is not None:
        return _converter
    path = converter_path()
    if path is None:
        raise NotImplementedError(MISSING)
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise NotImplementedError(f"{MISSING}: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[MODULE_NAME]
        raise NotImplementedError(f"{MISSING}: loading {path} failed: {exc}") from exc
    if not callable(getattr(module, "json_schema_to_gbnf", None)):
        del sys.modules[MODULE_NAME]
        raise NotImplementedError(f"{MISSING}: {path} has no json_schema_to_gbnf (unsupported llama-cpp-python version)")
    _converter = module
    return module


def json_schema_to_gbnf(schema: dict[str, Any]) -> str:
    """GBNF (root rule ``root``) accepting exactly the JSON documents ``schema`` allows."""
    converter = load_converter()
    try:
        return converter.json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # unsupported or malformed schema features
        raise ValueError(f"cannot build a grammar from the JSON schema: {exc}") from exc


def constraint_grammar(constraint: Any) -> str:
    """The GBNF text for a :class:`localai.types.Constraint`."""
    if constraint.type == "grammar":
        if not constraint.grammar or not constraint.grammar.strip():
            raise ValueError("the grammar constraint carries no grammar")
        return constraint.grammar
    if constraint.type == "json_schema":
        return json_schema_to_gbnf(constraint.json_schema or {"type": "object"})
    raise ValueError(f"unknown constraint type {constraint.type!r}")
