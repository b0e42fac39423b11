"""Backends in their own virtual environments, and the backend gallery that says what can be installed.

One folder per installed backend under the backends path (``--backends-path`` / ``LOCALAI_BACKENDS_PATH``)::

    <backends>/<name>/metadata.json   LocalAI's fields (name, alias, installed_at, version, uri) + what the server needs
    <backends>/<name>/venv/           the environment: localai-core (the server's version) + the plugin + its engine

The server never imports from an environment: it reads ``metadata.json`` (written by a probe that ran inside the
environment at install time) and starts the backend's workers with the environment's interpreter.
"""

from __future__ import annotations

from localai.backend_envs.gallery import available
from localai.backend_envs.installer import InstallError, install, uninstall, upgrade
from localai.backend_envs.names import InvalidName, validate_name
from localai.backend_envs.store import installed

__all__ = ["available", "install", "installed", "uninstall", "upgrade", "InstallError", "InvalidName", "validate_name"]
