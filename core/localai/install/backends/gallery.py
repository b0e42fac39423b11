"""The backend gallery: YAML indexes (LocalAI's backend index format) saying what ``localai backends install`` offers.

The index shipped inside this package comes last; extra indexes (``--backend-galleries`` /
``LOCALAI_BACKEND_GALLERIES``: file paths or URLs, comma-separated, or LocalAI's JSON ``[{"name", "url"}]``)
come first, so a user's index can override a shipped entry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localai.install.backends import capability as caps
from localai.names import normalise

SHIPPED = Path(__file__).with_name("index.yaml")
GALLERIES_ENV = "LOCALAI_BACKEND_GALLERIES"


class GalleryError(ValueError):
    """An index that cannot be read, or a name no index knows."""


@dataclass
class Entry:
    name: str
    gallery: str
    base: Path | None  # folder relative ``uri`` paths resolve against (None for an index fetched by URL)
    data: dict[str, Any] = field(default_factory=dict)
    index: str = ""  # the index's path or URL, so an upgrade finds the entry again

    @property
    def meta(self) -> bool:
        """LocalAI's meta backend: ``capabilities`` and no ``uri``; installs a concrete entry picked by hardware."""
        return not self.data.get("uri") and isinstance(self.data.get("capabilities"), dict)

    @property
    def aliases(self) -> list[str]:
        alias = self.data.get("alias") or []
        return [alias] if isinstance(alias, str) else list(alias)

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.data.items()}, "name": self.name, "gallery": self.gallery, "meta": self.meta,
                "id": f"{self.gallery}@{self.name}"}


@dataclass
class Gallery:
    name: str
    source: str
    entries: list[Entry]


def parse_sources(value: str | list[str] | tuple[str, ...] | None) -> list[tuple[str, str]]:
    """``(name, url-or-path)`` pairs from the flag/env forms."""
    if not value:
        return []
    items: list[str] = []
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            try:
                return [(str(g.get("name") or g["url"]), str(g["url"])) for g in json.loads(value)]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise GalleryError(f"backend galleries {value!r}: expected JSON [{{\"name\": ..., \"url\": ...}}]: {exc}") from None
        items = [v for v in value.split(",")]
    else:
        for v in value:
            items.extend(str(v).split(","))
    out = []
    for item in (i.strip() for i in items):
        if item:
            out.append((Path(item).stem if "://" not in item else item.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0], item))
    return out


def _read(source: str) -> tuple[Any, Path | None]:
    import yaml

    if "://" in source and not source.startswith("file://"):
        import urllib.request

        try:
            with urllib.request.urlopen(source, timeout=30) as resp:  # noqa: S310 - a user-given index URL
                text = resp.read().decode()
        except OSError as exc:
            raise GalleryError(f"cannot fetch backend gallery {source}: {exc}") from None
        base = None
    else:
        path = Path(source[7:] if source.startswith("file://") else source).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise GalleryError(f"cannot read backend gallery {path}: {exc}") from None
        base = path.resolve().parent
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)), base
    except yaml.YAMLError as exc:
        raise GalleryError(f"backend gallery {source} is not valid YAML: {exc}") from None


def load(name: str, source: str) -> Gallery:
    data, base = _read(source)
    if not isinstance(data, list):
        raise GalleryError(f"backend gallery {source}: expected a list of entries")
    entries = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not item.get("name"):
            raise GalleryError(f"backend gallery {source}: entry {i} has no name")
        if not item.get("uri") and not isinstance(item.get("capabilities"), dict):
            raise GalleryError(f"backend gallery {source}: entry {item['name']!r} has neither uri nor capabilities")
        entries.append(Entry(name=normalise(str(item["name"])), gallery=name, base=base, data=item, index=source))
    return Gallery(name=name, source=source, entries=entries)


def load_galleries(extra: str | list[str] | tuple[str, ...] | None = None) -> list[Gallery]:
    """Extra indexes (argument, else ``LOCALAI_BACKEND_GALLERIES``) then the shipped one."""
    sources = parse_sources(extra if extra else os.environ.get(GALLERIES_ENV, ""))
    return [*(load(n, s) for n, s in sources), load("localai", str(SHIPPED))]


def local_galleries() -> list[Gallery]:
    """The shipped index and extra indexes that are files: for messages on hot paths that must never hit the network."""
    out = []
    for name, source in parse_sources(os.environ.get(GALLERIES_ENV, "")):
        if "://" not in source or source.startswith("file://"):
            try:
                out.append(load(name, source))
            except GalleryError:
                continue
    return [*out, load("localai", str(SHIPPED))]


galleries = load_galleries  # the name callers use; ``available`` takes a ``galleries`` argument


def find(name: str, gals: list[Gallery]) -> Entry | None:
    """By ``gallery@name``, name, then alias; the first gallery that knows it wins."""
    gallery = None
    if "@" in name:
        gallery, name = name.split("@", 1)
    key = normalise(name)
    pool = [e for g in gals if gallery is None or g.name == gallery for e in g.entries]
    for entry in pool:
        if entry.name == key:
            return entry
    for entry in pool:
        if key in map(normalise, entry.aliases):
            return entry
    return None


def concrete(entry: Entry, gals: list[Gallery], capability: str | None = None) -> tuple[Entry, str | None]:
    """The entry to install: a meta backend's pick for ``capability`` (detected when ``None``)."""
    if not entry.meta:
        return entry, None
    capability = capability or caps.detect()
    table = {str(k).lower(): v for k, v in entry.data["capabilities"].items()}
    for key in caps.candidates(capability):
        if key in table:
            target = find(str(table[key]), gals)
            if target is None:
                raise GalleryError(f"meta backend {entry.name!r} maps {key!r} to {table[key]!r}, which no gallery lists")
            if target.meta:
                raise GalleryError(f"meta backend {entry.name!r} maps {key!r} to another meta backend {target.name!r}")
            return target, key
    raise GalleryError(f"meta backend {entry.name!r} has no build for capability {capability!r} "
                       f"(it has: {', '.join(table)}); set LOCALAI_FORCE_META_BACKEND_CAPABILITY to one of them")


def metas_for(entry: Entry, gals: list[Gallery]) -> list[Entry]:
    """The meta backends that pick ``entry`` for some accelerator (``transformers`` for ``openvino-transformers``):
    a flavour installed by its own name still answers to theirs, as LocalAI's gallery aliases flavours."""
    out: list[Entry] = []
    for g in gals:
        for meta in g.entries:
            if meta.meta and entry.name in {normalise(str(v)) for v in meta.data["capabilities"].values()} \
                    and meta.name not in {m.name for m in out}:
                out.append(meta)
    return out


def local_project(spec: str) -> tuple[str, str | None] | None:
    """``(name, version)`` of a local project folder's ``pyproject.toml``, or ``None`` if ``spec`` is not one."""
    path = Path(spec).expanduser()
    pyproject = path / "pyproject.toml"
    if not pyproject.is_file():
        return None
    import tomllib

    try:
        project = tomllib.loads(pyproject.read_text()).get("project") or {}
    except (OSError, ValueError):
        return None
    name = project.get("name")
    return (str(name), project.get("version")) if name else None


def checkout_root() -> Path | None:
    """The source checkout this localai runs from (``<root>/core/localai``), if it is one with ``plugins/``."""
    root = Path(__file__).resolve().parents[4]
    return root if (root / "plugins").is_dir() and (root / "core" / "localai").is_dir() else None


def _plugin_spec(entry: Entry, uri: str, source: Any) -> str:
    """``source`` (an in-repo plugin folder) when running from a checkout that has it; else ``uri``: a path
    (``./x``, ``../x``, ``/x``, ``file://``) relative to the index's folder, or a pip requirement."""
    root = checkout_root()
    if source and root is not None and (root / "plugins" / str(source) / "pyproject.toml").is_file():
        return str(root / "plugins" / str(source))
    if uri.startswith(("./", "../", "/", "file://", "~")):
        raw = uri[7:] if uri.startswith("file://") else uri
        if entry.base is None and not Path(raw).expanduser().is_absolute():
            raise GalleryError(f"gallery entry {entry.name!r}: relative uri {uri!r} in an index fetched by URL")
        return str(((entry.base or Path.cwd()) / Path(raw).expanduser()).resolve())
    if uri:
        return uri
    raise GalleryError(f"gallery entry {entry.name!r} has no uri")


def requirements(entry: Entry) -> tuple[list[str], str]:
    """What pip installs for a concrete entry, and the plugin spec itself (a path or a requirement).

    ``also``: sibling plugins the plugin depends on (``{uri, source}``, resolved like the plugin itself), so a
    checkout installs its own copy of them rather than looking for them on an index.
    """
    spec = _plugin_spec(entry, str(entry.data.get("uri") or ""), entry.data.get("source"))
    extra = entry.data.get("requirements") or []
    if not isinstance(extra, list) or not all(isinstance(r, str) for r in extra):
        raise GalleryError(f"gallery entry {entry.name!r}: requirements must be a list of pip requirement strings")
    also = entry.data.get("also") or []
    if not isinstance(also, list) or not all(isinstance(a, dict) and a.get("uri") for a in also):
        raise GalleryError(f"gallery entry {entry.name!r}: also must be a list of {{uri, source}} mappings")
    extra = [*extra, *(_plugin_spec(entry, str(a["uri"]), a.get("source")) for a in also)]
    extras = entry.data.get("extras") or []
    if not isinstance(extras, list) or not all(isinstance(x, str) and x.replace("-", "").replace("_", "").isalnum()
                                                for x in extras):
        raise GalleryError(f"gallery entry {entry.name!r}: extras must be a list of extra names")
    if extras:  # the plugin's optional dependency groups holding its engine: path[engine] or name[engine]==1.0
        cut = len(spec) if Path(spec).is_absolute() else next((i for i, ch in enumerate(spec) if ch in "=<>~!@ ;"), len(spec))
        spec = f"{spec[:cut]}[{','.join(extras)}]{spec[cut:]}"
    return list(extra), spec


def build_step(entry: Entry) -> dict[str, Any] | None:
    """The entry's ``build:`` section (an engine compiled at install), with its runner resolved to a pip spec.

    ``runner``: ``{uri, source, module}``, the plugin whose ``python -m MODULE --spec JSON`` builds the engine in
    the new environment and prints ``{"wheel": PATH}``; the rest of the section is passed to it as the spec.
    """
    section = entry.data.get("build")
    if section is None:
        return None
    runner = section.get("runner") if isinstance(section, dict) else None
    if not isinstance(runner, dict) or not runner.get("uri") or not str(runner.get("module") or "").replace(".", "").replace("_", "").isalnum():
        raise GalleryError(f"gallery entry {entry.name!r}: build needs a runner {{uri, source, module}}")
    spec = {k: v for k, v in section.items() if k != "runner"}
    return {"runner": _plugin_spec(entry, str(runner["uri"]), runner.get("source")), "module": str(runner["module"]),
            "spec": spec}


def available(backends_path: Path | str, galleries: Any = (), *, system_backends: Any = ()) -> list[dict[str, Any]]:
    """Every gallery entry with ``installed`` (and, when installed, ``installed_version``; ``upgradable`` where
    a local source's version differs from the installed one). ``system_backends``: names served by plugins in the
    server's own environment, reported installed with ``system: true``."""
    from localai.install.backends.store import installed

    gals = load_galleries(galleries or None)
    by_name = {m["name"]: m for m in installed(backends_path)}
    by_entry: dict[str, dict[str, Any]] = {}
    for meta in by_name.values():
        src = meta.get("source") or {}
        for key in (src.get("gallery_entry"), src.get("meta_backend")):
            if key:
                by_entry.setdefault(key, meta)
    out = []
    seen: set[str] = set()
    for g in gals:
        for entry in g.entries:
            if entry.name in seen:
                continue  # overridden by an earlier gallery
            seen.add(entry.name)
            item = entry.to_dict()
            found = by_name.get(entry.name) or by_entry.get(entry.name)
            item["installed"] = found is not None
            item["system"] = found is None and entry.name in set(system_backends)
            if item["system"]:
                item["installed"] = True
                item["installed_name"] = entry.name
            if found is not None:
                item["installed_name"] = found["name"]
                item["installed_version"] = found.get("version")
                item["upgradable"] = _upgradable(entry, g, found, gals)
            out.append(item)
    return out


def _upgradable(entry: Entry, g: Gallery, meta: dict[str, Any], gals: list[Gallery]) -> bool:
    """True when the entry's local source declares another version than the one installed."""
    try:
        target = entry if not entry.meta else find(str((meta.get("source") or {}).get("gallery_entry") or ""), gals)
        if target is None or target.meta:
            return False
        _, spec = requirements(target)
    except GalleryError:
        return False
    project = local_project(spec)
    return project is not None and project[1] is not None and project[1] != meta.get("version")
