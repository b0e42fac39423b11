"""Strict test runs: a test that needs an engine, environment or browser the machine lacks fails instead of
skipping where ``LOCALAI_TEST_STRICT`` is set (``scripts/test.sh`` sets it)."""

from __future__ import annotations

import os
from typing import NoReturn

from localai.testing.models import backend_python

STRICT_ENV = "LOCALAI_TEST_STRICT"


def strict() -> bool:
    """Whether a missing engine, environment or browser fails the test run (``scripts/test.sh`` sets it)."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def missing(reason: str) -> NoReturn:
    """This test needs an engine, environment or browser the machine lacks: fail it under :func:`strict` (the
    README's test command and CI), else skip it saying so. The one way tests report something missing."""
    import pytest

    if strict():
        pytest.fail(f"{reason} ({STRICT_ENV} is set: a missing engine fails the run)")
    pytest.skip(f"{reason} (set {STRICT_ENV}=1, as scripts/test.sh does, to fail instead)")


def engine_python_or_skip(backend: str) -> str:
    """:func:`backend_python` for a test, or :func:`missing` saying how to provide one."""
    python, reason = backend_python(backend)
    if python is None:
        missing(reason)
    assert python is not None  # missing() raised
    return python
