"""Helpers for testing localai and backend plugins: a real server in a subprocess, the default model, strict
runs, and the backend conformance suite. A facade: the helpers live in ``processes``, ``models`` and ``strict``
(the conformance suite imports them from there, never from here).

Plugin authors can use these in their own test suites::

    from localai.testing import ServerProcess, default_gguf
    from localai.testing import BackendConformance  # the backend conformance suite (localai.testing.conformance)
"""

from __future__ import annotations

from typing import Any

from localai.testing.models import (
    GGUF_NAME,
    HF_FORMAT,
    backend_python,
    default_gguf,
    engine_side,
    gemma_hf_folder,
    gemma_ov_folder,
    minilm_folder,
)
from localai.testing.processes import (
    ServerProcess,
    free_port,
    worker_pids,
    write_models,
)
from localai.testing.strict import STRICT_ENV, engine_python_or_skip, missing, strict

__all__ = ["GGUF_NAME", "HF_FORMAT", "STRICT_ENV", "BackendConformance", "CONTRACT", "ServerProcess", "backend_python",
           "default_gguf", "engine_python_or_skip", "engine_side", "free_port", "gemma_hf_folder", "gemma_ov_folder",
           "minilm_folder", "missing", "strict", "worker_pids", "write_models"]


def __getattr__(name: str) -> Any:
    """``BackendConformance`` (the backend conformance suite) loads only when asked for: it needs pytest."""
    if name in ("BackendConformance", "CONTRACT"):
        import localai.testing.conformance

        return getattr(localai.testing.conformance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
