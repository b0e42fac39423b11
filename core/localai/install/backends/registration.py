"""Installed backend environments as :class:`localai.registry.backends.Backend` entries: from ``metadata.json`` only.

Nothing is imported from an environment: the option table, aliases and capabilities come from the metadata the
install probe wrote, and workers start with the environment's interpreter (``Backend.python``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from localai.install.backends.store import installed
from localai.options import OptionSpec
from localai.registry.backends import Backend, BackendError, Registry, normalise

log = logging.getLogger("localai.install.backends")


def _reason(reason: str | None) -> Callable[[], str | None]:
    return lambda: reason


def backends_of(meta: dict[str, Any]) -> list[Backend]:
    """The backends one environment serves. Installed under another name (``--name``) than its plugin's, the
    plugin's first backend answers to that name (and ``--alias``es) only; a broken one is listed unavailable."""
    plugin = f"environment {meta['path']}"
    env_reason = meta.get("unavailable")
    extra = [normalise(a) for a in meta.get("aliases") or []]
    if not meta.get("backends"):
        return [Backend(name=meta["name"], plugin=plugin, distribution=meta.get("distribution"), version=meta.get("version"),
                        aliases=tuple(extra), check=_reason(env_reason or "the environment registers no backend"),
                        python=meta.get("interpreter"), environment=meta["path"])]
    renamed = meta["name"] not in [b["name"] for b in meta["backends"]]
    out = []
    for b in meta["backends"][:1] if renamed else meta["backends"]:
        name = meta["name"] if renamed else b["name"]
        aliases = list(extra) if renamed or name == meta["name"] else []
        if not renamed:
            aliases = [*b.get("aliases", []), *aliases]
        try:
            options = [OptionSpec.from_dict(o) for o in b.get("options") or []]
            problem = env_reason or b.get("unavailable")
        except (KeyError, TypeError, ValueError) as exc:
            options, problem = [], f"broken option table in {meta['path']}/metadata.json: {exc}"
        out.append(Backend(
            name=normalise(name), plugin=plugin, distribution=b.get("distribution"), version=b.get("version"),
            aliases=tuple(dict.fromkeys(aliases)), capabilities=tuple(b.get("capabilities") or ()),
            formats=tuple(b.get("formats") or ()), description=b.get("description") or "", check=_reason(problem),
            options=options, yaml_fields=tuple(b.get("yaml_fields") or ()), python=meta.get("interpreter"),
            environment=meta["path"], target=b["name"],
        ))
    return out


def _dist(name: str | None) -> str:
    return (name or "").lower().replace("_", "-").replace(".", "-")


def _take_over_shadow(registry: Registry, backend: Backend, keys: Iterable[str] | None = None) -> None:
    """The same distribution in the server's environment (registered there without its engine, e.g. for its tests)
    and in a backend environment is one backend: the environment, which has the engine, serves it. ``keys``: the
    names to take over (default: the backend's own)."""
    for key in (keys if keys is not None else (backend.name, *map(normalise, backend.aliases))):
        owner = registry.backends.get(registry._index.get(key, ""))
        if owner is not None and owner.environment is None and owner.distribution \
                and _dist(owner.distribution) == _dist(backend.distribution):
            log.info("backend %s: the environment %s serves it instead of %s in the server's environment",
                     owner.name, backend.environment, owner.distribution)
            registry.backends.pop(owner.name, None)
            for k in [k for k, v in registry._index.items() if v == owner.name]:
                registry._index.pop(k, None)


def add(registry: Registry, meta: dict[str, Any]) -> list[str]:
    """Register one environment's backends; a name another distribution or environment claims is an error naming
    both (the same distribution installed in the server's environment too is replaced by the environment)."""
    names = []
    for backend in backends_of(meta):
        _take_over_shadow(registry, backend)
        try:
            registry._add(backend)
            names.append(backend.name)
        except BackendError as exc:
            registry.errors.append(str(exc))
            log.error("%s", exc)
    return names


def fallback_names(meta: dict[str, Any]) -> list[str]:
    """Names an environment answers to only while nothing else claims them: its meta backend's (an
    ``openvino-transformers`` install answers to ``transformers``) and, installed under another name, its plugin's."""
    names = [normalise(n) for n in meta.get("fallback_names") or []]
    backends = meta.get("backends") or []
    if backends and meta["name"] not in [b["name"] for b in backends]:
        names += [normalise(backends[0]["name"]), *(normalise(a) for a in backends[0].get("aliases") or [])]
    return list(dict.fromkeys(n for n in names if n != meta["name"]))


def _preferred(metas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Environments in the order they win a shared fallback name: the flavour this machine's accelerator picks,
    then by name."""
    from localai.install.backends import capability as caps

    try:
        wanted = caps.candidates(caps.detect())
    except Exception:  # noqa: BLE001 - detection failing only loses the preference
        wanted = []
    rank = {key: i for i, key in enumerate(wanted)}
    return sorted(metas, key=lambda m: (rank.get(str((m.get("source") or {}).get("capability") or ""), len(rank)), m["name"]))


def link_fallbacks(registry: Registry, metas: list[dict[str, Any]]) -> None:
    """Point each unclaimed fallback name at its environment (replacing the same distribution's engine-less copy
    in the server's environment, as an install by that name would); names other backends own stay theirs."""
    for key in registry.fallbacks:
        holder = registry.backends.get(registry._index.pop(key, ""))
        if holder is not None:
            holder.aliases = tuple(a for a in holder.aliases if normalise(a) != key)
    registry.fallbacks.clear()
    for meta in _preferred(metas):
        backend = next((b for b in registry.backends.values() if b.environment == meta["path"]), None)
        if backend is None:
            continue
        names = fallback_names(meta)
        _take_over_shadow(registry, backend, names)
        for key in names:
            if key in registry._index:
                continue
            registry._index[key] = backend.name
            registry.fallbacks.add(key)
            backend.aliases = (*backend.aliases, key)
            log.info("backend %s (environment %s) answers to %r", backend.name, meta["path"], key)


def gallery_hint(name: str) -> str | None:
    """"Not installed: localai backends install X" for a name the backend gallery lists (read from local indexes
    only: this runs on request paths)."""
    try:
        from localai.install.backends.gallery import find, local_galleries

        entry = find(name, local_galleries())
    except Exception:  # noqa: BLE001 - an unreadable gallery must not hide the real problem
        return None
    return f"backend {name!r} is not installed: localai backends install {entry.name}" if entry is not None else None


def register_environments(registry: Registry, backends_path: Path | str | None) -> list[dict[str, Any]]:
    """Add every installed environment's backends to ``registry`` (and the backend gallery's install hints);
    returns the metadata read."""
    registry.install_hint = gallery_hint
    if backends_path is None:
        return []
    from localai import __version__

    metas = installed(backends_path)
    for meta in metas:
        add(registry, meta)
    link_fallbacks(registry, metas)
    for meta in metas:
        if meta.get("unavailable"):
            log.error("backend environment %s: %s", meta["name"], meta["unavailable"])
        elif meta.get("localai_version") not in (None, __version__):
            log.warning("backend environment %s was built with localai-core %s, the server is %s: "
                        "run `localai backends upgrade %s`", meta["name"], meta["localai_version"], __version__, meta["name"])
    return metas


def remove(registry: Registry, env_path: str) -> list[str]:
    """Drop the backends an environment registered (it was uninstalled or is being replaced)."""
    gone = [n for n, b in registry.backends.items() if b.environment == env_path]
    for n in gone:
        registry.backends.pop(n, None)
    for key in [k for k, v in registry._index.items() if v in gone]:
        registry._index.pop(key, None)
    return gone


def refresh_catalog(state: Any, env_path: str | None = None) -> None:
    """Re-resolve models that could not be served, or that an environment served, against the current registry."""
    catalog = state.catalog
    for name, entry in list(catalog.entries.items()):
        if not entry.usable or (env_path and entry.backend is not None and entry.backend.environment == env_path):
            catalog.entries[name] = catalog._entry(entry.config, entry.file)


def activate(state: Any, meta: dict[str, Any]) -> None:
    """A backend installed while the server runs: serve it without a restart."""
    remove(state.registry, meta["path"])
    add(state.registry, meta)
    link_fallbacks(state.registry, installed(Path(meta["path"]).parent))
    refresh_catalog(state, meta["path"])


def deactivate(state: Any, meta: dict[str, Any]) -> None:
    remove(state.registry, meta["path"])
    link_fallbacks(state.registry, installed(Path(meta["path"]).parent))
    refresh_catalog(state, meta["path"])


def models_using(catalog_or_path: Any, names: set[str]) -> list[str]:
    """Models whose ``backend:`` names one of ``names`` (a backend's names and aliases, normalised)."""
    from localai.config import load_folder

    if hasattr(catalog_or_path, "entries"):
        configs = [e.config for e in catalog_or_path.entries.values()]
    else:
        configs = [c for c, _ in load_folder(Path(catalog_or_path))[0]] if Path(catalog_or_path).is_dir() else []
    return sorted(c.name for c in configs if c.backend and normalise(c.backend) in names)


def names_of(meta: dict[str, Any]) -> set[str]:
    keys = {meta["name"], *(normalise(a) for a in meta.get("aliases") or [])}
    renamed = meta["name"] not in [b["name"] for b in meta.get("backends") or []]
    if not renamed:
        for b in meta.get("backends") or []:
            keys |= {normalise(b["name"]), *(normalise(a) for a in b.get("aliases") or [])}
    return keys


def refresh(state: Any) -> list[str]:
    """Serve environments installed since start-up (by the model gallery's backend step, or another process)."""
    known = {b.environment for b in state.registry.backends.values() if b.environment}
    added = []
    for meta in installed(state.settings.backends_path):
        if meta["path"] not in known:
            activate(state, meta)
            added.append(meta["name"])
    return added
