"""Discovering backend plugins through the ``localai.backends`` entry-point group."""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from localai import hookspecs

log = logging.getLogger("localai.registry.plugins")

ENTRY_POINT_GROUP = "localai.backends"


@dataclass
class PluginInfo:
    """One plugin as discovered: where it came from and whether it loaded."""

    name: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None
    module: Any = field(default=None, repr=False)


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers each plugin's distribution and load error."""

    def __init__(self) -> None:
        super().__init__("localai")
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        from localai.registry import fallbacks  # the model protocol's trylast hooks (localai.protocol)

        self.register(fallbacks, name="localai.registry.fallbacks")

    def add_plugin(self, plugin: Any, name: str, distribution: str | None = None, version: str | None = None) -> PluginInfo:
        """Register ``plugin``; a plugin whose hooks match no spec or whose signatures are wrong is rejected."""
        info = PluginInfo(name=name, distribution=distribution, version=version, module=plugin)
        self.infos[name] = info
        try:
            self.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - pluggy.PluginValidationError and friends: one plugin is rejected
            info.error = f"rejected: {exc}"
            log.error("plugin %s (%s) rejected: %s", name, distribution or "in-process", exc)
            return info
        unknown = [hook.name for hook in self.get_hookcallers(plugin) or [] if not hook.has_spec()]
        if unknown:
            self.unregister(plugin)
            info.error = f"rejected: hook implementation(s) {sorted(set(unknown))} match no localai hookspec"
            log.error("plugin %s (%s) %s", name, distribution or "in-process", info.error)
        return info

    def ok_plugins(self) -> list[PluginInfo]:
        return [i for i in self.infos.values() if i.error is None]


def discover(pm: PluginManager) -> None:
    """Import every entry point of the group; a plugin that fails to import is recorded, not fatal."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        version = dist.version if dist is not None else None
        if ep.name in pm.infos:
            continue
        try:
            module = ep.load()
        except Exception as exc:  # noqa: BLE001 - a plugin that fails to import is listed broken, never fatal
            pm.infos[ep.name] = PluginInfo(ep.name, dist_name, version, error=f"import failed: {type(exc).__name__}: {exc}")
            log.error("plugin %s (%s) failed to import: %s: %s", ep.name, dist_name, type(exc).__name__, exc)
            continue
        pm.add_plugin(module, ep.name, dist_name, version)


def load_named_modules(pm: PluginManager, names: str) -> None:
    """Register plugin modules named in ``LOCALAI_PLUGINS`` (comma-separated import paths).

    Like pytest's ``-p``: lets a test or a local experiment add a plugin without packaging it.
    Worker processes inherit the variable, so such a plugin is served end to end.
    """
    for name in filter(None, (n.strip() for n in names.split(","))):
        if name in pm.infos:
            continue
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a plugin that fails to import is listed broken, never fatal
            pm.infos[name] = PluginInfo(name, error=f"import failed: {type(exc).__name__}: {exc}")
            log.error("plugin %s failed to import: %s: %s", name, type(exc).__name__, exc)
            continue
        pm.add_plugin(module, name)


def make_plugin_manager(use_entry_points: bool = True) -> PluginManager:
    """A manager with ``LOCALAI_PLUGINS`` modules and, unless disabled, the installed plugins."""
    pm = PluginManager()
    load_named_modules(pm, os.environ.get("LOCALAI_PLUGINS", ""))
    if use_entry_points and os.environ.get("LOCALAI_DISABLE_ENTRY_POINTS", "") not in ("1", "true"):
        discover(pm)
    return pm
