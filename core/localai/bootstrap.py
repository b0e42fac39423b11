"""The one set-up of what serves models, shared by the server, the CLI, the conformance harness and its
subprocess checks: plugins discovered through their entry points, the installed backend environments registered
(their metadata only: nothing is imported from them), and the models folder read against that registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localai.install.backends.registration import register_environments
from localai.registry.backends import Registry
from localai.registry.catalog import Catalog
from localai.registry.plugins import PluginManager, make_plugin_manager


@dataclass
class Setup:
    pm: PluginManager
    registry: Registry
    catalog: Catalog | None  # None when no models folder was given

    @property
    def models(self) -> Catalog:
        """The catalog, for callers that gave a models folder."""
        if self.catalog is None:
            raise ValueError("bootstrap() was given no models folder")
        return self.catalog


def bootstrap(models_path: Path | str | None = None, backends_path: Path | str | None = None,
              pm: PluginManager | None = None) -> Setup:
    pm = pm or make_plugin_manager()
    registry = Registry(pm)
    register_environments(registry, backends_path)
    catalog = Catalog(Path(models_path), registry).load() if models_path is not None else None
    return Setup(pm, registry, catalog)
