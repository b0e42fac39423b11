"""Backends in their own virtual environments, and the backend gallery that says what can be installed.

One folder per installed backend under the backends path (``--backends-path`` / ``LOCALAI_BACKENDS_PATH``)::

    <backends>/<name>/metadata.json   LocalAI's fields (name, alias, installed_at, version, uri) + what the server needs
    <backends>/<name>/venv/           the environment: localai-core (the server's version) + the plugin + its engine

The server never imports from an environment: it reads ``metadata.json`` (written by a probe that ran inside the
environment at install time) and starts the backend's workers with the environment's interpreter.
"""

from __future__ import annotations

from typing import Any

# Loaded on first use: the server's start-up and ``localai backends`` only need ``store`` and ``registration``.
_EXPORTS = {
    "available": "localai.install.backends.gallery",
    "install": "localai.install.backends.installer",
    "uninstall": "localai.install.backends.installer",
    "upgrade": "localai.install.backends.installer",
    "InstallError": "localai.install.backends.installer",
    "installed": "localai.install.backends.store",
    "InvalidName": "localai.names",
    "validate_name": "localai.names",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'localai.install.backends' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
