"""The backend registry: which plugin serves which ``backend:`` name, and whether it can run here."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localai.names import normalise  # noqa: F401 - re-exported: plugins and callers spell names with it
from localai.options import parse_option_list
from localai.registry.plugins import PluginManager

log = logging.getLogger("localai.backends")

# Backends the project ships as separate distributions: lets "not installed" name what to install.
KNOWN_BACKENDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "llama-cpp": ("localai-llama-cpp", ("llama", "llama.cpp", "llamacpp")),
    "ik-llama-cpp": ("localai-ik-llama", ("ik_llama", "ik-llama", "ik_llama_cpp")),
    "turboquant": ("localai-turboquant", ()),
    "vllm": ("localai-vllm", ()),
    "transformers": ("localai-transformers", ()),
    "diffusers": ("localai-diffusers", ()),
}

# Preference among backends that claim the same file format when no ``backend:`` is given.
FORMAT_PREFERENCE = ("llama-cpp", "ik-llama-cpp", "turboquant")


_WARNED: set[str] = set()


def resolve_ref(ref: str | Callable[..., Any]) -> Callable[..., Any]:
    """``"pkg.module:Attr.attr"`` as the object it names, imported only now (the engine loads with its module)."""
    if callable(ref):
        return ref
    module, _, attrs = ref.partition(":")
    if not module or not attrs:
        raise BackendError(f"{ref!r} is not a 'package.module:function' reference")
    obj: Any = importlib.import_module(module)
    for attr in attrs.split("."):
        obj = getattr(obj, attr)
    return obj


class BackendError(Exception):
    """A ``backend:`` that cannot be served; the message says what to do."""


@dataclass
class Backend:
    name: str
    plugin: str
    distribution: str | None
    version: str | None
    aliases: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    description: str = ""
    check: Callable[[], str | None] | None = None
    options: list[Any] = field(default_factory=list)
    yaml_fields: tuple[str, ...] = ()  # top-level YAML keys the backend reads beyond the core schema
    python: str | None = None
    environment: str | None = None  # the backend environment folder (localai.install.backends) serving it, if any
    target: str | None = None  # the plugin's own name for it, when installed under another name (--name)
    load: str | Callable[..., Any] | None = None  # "pkg.module:Class.load": (config, model_path, options) -> model
    parse: str | Callable[..., Any] | None = None  # "pkg.module:parse": (options, config) -> dict; default: the table
    _unavailable: str | None | bool = field(default=False, repr=False)

    @property
    def unavailable(self) -> str | None:
        """Why the engine cannot run here, or ``None``; the check runs once."""
        if self._unavailable is False:
            if self.interpreter != (self.python or sys.executable):
                # Workers run on another interpreter (LOCALAI_PYTHON_<NAME>): this process's check says nothing
                # about it; a load there reports its own problems.
                self._unavailable = None
                return None
            try:
                self._unavailable = self.check() if self.check else None
            except Exception as exc:  # noqa: BLE001 - a broken check is itself a reason
                self._unavailable = f"availability check failed: {type(exc).__name__}: {exc}"
        return self._unavailable  # type: ignore[return-value]

    @property
    def interpreter(self) -> str:
        """The Python that runs this backend's workers: ``LOCALAI_PYTHON_<NAME>``, the plugin's choice, or ours.

        Lets a backend live in its own environment (engines pin conflicting torch/transformers versions);
        that environment needs ``localai-core`` and the plugin installed.
        """
        override = os.environ.get("LOCALAI_PYTHON_" + self.name.upper().replace("-", "_"))
        return override or self.python or sys.executable


class Registry:
    """Backends by canonical name, with an alias index; built from the plugins' registrations."""

    def __init__(self, pm: PluginManager) -> None:
        self.pm = pm
        self.backends: dict[str, Backend] = {}
        self._index: dict[str, str] = {}
        self.fallbacks: set[str] = set()  # index keys a backend holds only while nothing else claims them
        # How to get a backend nobody registered, when someone knows more than KNOWN_BACKENDS (the backend gallery:
        # set by localai.install.backends.registration); returns the whole message, or None.
        self.install_hint: Callable[[str], str | None] | None = None
        self.errors: list[str] = []
        for impl in pm.hook.register_backends.get_hookimpls():
            info = pm.infos.get(impl.plugin_name)
            try:
                impl.function(register=self._registrar(impl.plugin_name, info))
            except BackendError as exc:
                self.errors.append(str(exc))
                log.error("%s", exc)
            except Exception as exc:  # noqa: BLE001 - one broken plugin is reported, the others still register
                msg = f"plugin {impl.plugin_name} failed in register_backends: {type(exc).__name__}: {exc}"
                if info:
                    info.error = msg
                self.errors.append(msg)
                log.error("%s", msg)

    def _registrar(self, plugin: str, info: Any) -> Callable[..., None]:
        def register(
            name: str,
            *,
            aliases: tuple[str, ...] | list[str] = (),
            capabilities: tuple[str, ...] | list[str] = (),
            formats: tuple[str, ...] | list[str] = (),
            description: str = "",
            check: Callable[[], str | None] | None = None,
            options: list[Any] | None = None,
            yaml_fields: tuple[str, ...] | list[str] = (),
            python: str | None = None,
            load: str | Callable[..., Any] | None = None,
            parse: str | Callable[..., Any] | None = None,
        ) -> None:
            if load is None and self._implements(plugin, "load_model"):
                self._deprecated(plugin, name)
            backend = Backend(
                name=normalise(name),
                plugin=plugin,
                distribution=getattr(info, "distribution", None),
                version=getattr(info, "version", None),
                aliases=tuple(aliases),
                capabilities=tuple(capabilities),
                formats=tuple(f.lower().lstrip(".") for f in formats),
                description=description,
                check=check,
                options=list(options or []),
                yaml_fields=tuple(yaml_fields),
                python=python,
                load=load,
                parse=parse,
            )
            self._add(backend)

        return register

    def _implements(self, plugin: str, hook: str) -> bool:
        return any(impl.plugin_name == plugin for impl in getattr(self.pm.hook, hook).get_hookimpls())

    def _deprecated(self, plugin: str, name: str) -> None:
        message = (f"plugin {plugin}: backend {name!r} is loaded through the per-hook form (load_model/parse_options "
                   "hooks that check the backend name); declare it instead: register(..., load='pkg.module:Class.load', "
                   "parse='pkg.module:parse'). The per-hook form keeps working until the next release.")
        warnings.warn(message, DeprecationWarning, stacklevel=3)
        if plugin not in _WARNED:  # once per process: every worker and CLI command builds a registry
            _WARNED.add(plugin)
            log.warning("%s", message)

    # -- dispatch: the core calls a declared backend's functions, or (deprecated) asks every plugin's hooks --------

    def parse_options(self, backend: Backend, options: list[str], config: Any) -> dict[str, Any] | None:
        """A model's ``options:`` as the backend reads them; ``ValueError`` naming a bad option.

        A backend in another environment, or one declared without ``parse``, is parsed from its option table here;
        ``None`` means a per-hook plugin answered nothing."""
        if backend.environment or (backend.load is not None and backend.parse is None):
            return parse_option_list(list(options), backend.options, dict(os.environ))
        if backend.parse is not None:
            return dict(resolve_ref(backend.parse)(list(options), config))
        result = self.pm.hook.parse_options(backend=backend.target or backend.name, options=list(options), config=config)
        return None if result is None else dict(result)

    def load_model(self, backend: Backend, config: Any, model_path: str | None, options: dict[str, Any]) -> Any:
        """The loaded model object (worker process): the declared loader, else the per-hook plugins' answer."""
        if backend.load is not None:
            return resolve_ref(backend.load)(config, model_path, options)
        return self.pm.hook.load_model(backend=backend.target or backend.name, config=config, model_path=model_path,
                                       options=options)

    def _add(self, backend: Backend) -> None:
        for key in (backend.name, *map(normalise, backend.aliases)):
            if key in self.fallbacks:  # a real claim beats a fallback name
                self.fallbacks.discard(key)
                holder = self.backends.get(self._index.pop(key, ""))
                if holder is not None:
                    holder.aliases = tuple(a for a in holder.aliases if normalise(a) != key)
            owner = self._index.get(key)
            if owner is not None and owner != backend.name or (key == backend.name and key in self.backends):
                other = self.backends[owner or key]
                raise BackendError(
                    f"backend name {key!r} is claimed by two plugins: "
                    f"{other.plugin} ({other.distribution or 'in-process'}) and "
                    f"{backend.plugin} ({backend.distribution or 'in-process'}); uninstall one of them"
                )
        self.backends[backend.name] = backend
        for key in (backend.name, *map(normalise, backend.aliases)):
            self._index[key] = backend.name
        log.debug("backend %s registered by %s", backend.name, backend.plugin)

    def resolve(self, name: str) -> Backend:
        """The backend a YAML ``backend:`` value means; :class:`BackendError` saying why not."""
        key = normalise(name)
        if key in self._index:
            return self.backends[self._index[key]]
        for canonical, (dist, aliases) in KNOWN_BACKENDS.items():
            if key == canonical or key in map(normalise, aliases):
                raise BackendError(
                    f"backend {name!r} ({canonical}) is not installed: localai backends install {canonical} "
                    f"(or pip install {dist} into the server's environment)"
                )
        hint = self.install_hint(name) if self.install_hint is not None else None
        if hint:
            raise BackendError(hint)
        installed = ", ".join(sorted(self.backends)) or "none"
        raise BackendError(f"unknown backend {name!r}; installed backends: {installed}")

    def for_file(self, filename: str) -> Backend | None:
        """The first installed, available backend claiming ``filename``'s suffix."""
        suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        claimants = [b for b in self.backends.values() if suffix in b.formats]
        claimants.sort(key=lambda b: FORMAT_PREFERENCE.index(b.name) if b.name in FORMAT_PREFERENCE else 99)
        for backend in claimants:
            if backend.unavailable is None:
                return backend
        return claimants[0] if claimants else None
