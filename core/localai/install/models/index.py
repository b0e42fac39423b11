"""Gallery lists and indexes in LocalAI's format: ``[{"name", "url"}]`` galleries, each a YAML list of entries."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from localai.install.models import DEFAULT_GALLERIES  # noqa: F401  (re-exported)
from localai.install.models.sources import SourceError, read_text

log = logging.getLogger("localai.install.models")

CACHE_SECONDS = 300.0


def _none_list(v: Any) -> Any:
    return [] if v is None else v


def _yaml_map(v: Any) -> Any:
    """A map, or YAML text holding one (a base config's ``config_file`` is text)."""
    if isinstance(v, str):
        try:
            v = yaml.safe_load(v) if v.strip() else {}
        except yaml.YAMLError as exc:
            raise ValueError(f"config_file is not valid YAML: {exc}") from exc
    return {} if v is None else v


class GalleryRef(BaseModel):
    """One configured gallery (LocalAI's ``config.Gallery``)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1)
    url: str = Field(min_length=1)
    mirrors: list[str] = Field(default_factory=list)


class FileSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    filename: str
    uri: str
    sha256: str = ""

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return (v or "").strip().lower() if isinstance(v, (str, type(None))) else v


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    content: str = ""


class GalleryEntry(BaseModel):
    """One index entry (LocalAI's ``GalleryModel``); unknown keys such as ``last_checked`` are kept."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    url: str = ""
    description: str = ""
    license: str = ""
    urls: list[str] = Field(default_factory=list)
    icon: str = ""
    tags: list[str] = Field(default_factory=list)
    files: list[FileSpec] = Field(default_factory=list)
    config_file: dict[str, Any] = Field(default_factory=dict)
    overrides: dict[str, Any] = Field(default_factory=dict)
    prompt_templates: list[PromptTemplate] = Field(default_factory=list)
    size: str = ""
    backend: str = ""
    gallery: GalleryRef | None = None

    @field_validator("urls", "tags", "files", "prompt_templates", mode="before")
    @classmethod
    def _none_list(cls, v: Any) -> Any:
        return _none_list(v)

    @field_validator("config_file", "overrides", mode="before")
    @classmethod
    def _none_map(cls, v: Any) -> Any:
        return _yaml_map(v)

    @property
    def id(self) -> str:
        return f"{self.gallery.name}@{self.name}" if self.gallery else self.name

    def metadata(self, installed: bool) -> dict[str, Any]:
        """LocalAI's ``gallery.Metadata`` JSON for ``GET /models/available``."""
        backend = self.backend or str(self.overrides.get("backend") or self.config_file.get("backend") or "")
        out: dict[str, Any] = {
            "url": self.url, "name": self.name, "description": self.description, "license": self.license,
            "urls": self.urls, "icon": self.icon, "tags": self.tags,
            "files": [f.model_dump() for f in self.files],
            "gallery": self.gallery.model_dump() if self.gallery else None,
            "installed": installed, "backend": backend, "id": self.id,
        }
        if self.size:
            out["size"] = self.size
        return out


class BaseConfig(BaseModel):
    """What an entry's ``url`` points at (LocalAI's gallery ``ModelConfig``): ``config_file`` is YAML text there."""

    model_config = ConfigDict(extra="ignore")

    name: str = ""
    description: str = ""
    license: str = ""
    urls: list[str] = Field(default_factory=list)
    config_file: dict[str, Any] = Field(default_factory=dict)
    files: list[FileSpec] = Field(default_factory=list)
    prompt_templates: list[PromptTemplate] = Field(default_factory=list)

    @field_validator("urls", "files", "prompt_templates", mode="before")
    @classmethod
    def _none_list(cls, v: Any) -> Any:
        return _none_list(v)

    @field_validator("config_file", mode="before")
    @classmethod
    def _none_map(cls, v: Any) -> Any:
        return _yaml_map(v)


class GalleryError(Exception):
    """A gallery list, index or entry that cannot be used; the message says which and why."""


UNREACHABLE = ("The model gallery cannot be reached from this machine, so nothing can be installed from it now. "
               "Models already in the models folder still work. To install from a gallery index on this network or "
               "on disk, point LOCALAI_GALLERIES (or --galleries) at it (docs/model-gallery.md).")


class GalleryUnreachable(GalleryError):
    """No configured gallery could be read (offline, DNS, a proxy): said as a person would, the cause kept apart."""

    def __init__(self, causes: list[str]) -> None:
        self.causes = causes
        super().__init__(f"{UNREACHABLE} Cause: {'; '.join(causes)}")


def parse_galleries(text: str | None) -> list[GalleryRef]:
    """``--galleries`` / ``LOCALAI_GALLERIES``: a JSON list of ``{"name", "url"}``."""
    if text is None or not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GalleryError(f"galleries must be a JSON list of {{\"name\", \"url\"}}: {exc}") from exc
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise GalleryError("galleries must be a JSON list of {\"name\", \"url\"}")
    try:
        refs = [GalleryRef.model_validate(g) for g in data]
    except ValidationError as exc:
        raise GalleryError(f"galleries: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    names = [g.name for g in refs]
    if len(set(names)) != len(names):
        raise GalleryError(f"galleries: duplicate gallery name in {names}")
    return refs


def parse_index(text: str, gallery: GalleryRef | None = None, source: str = "index") -> list[GalleryEntry]:
    """A gallery index: a YAML list of entries. Entries that do not validate are skipped with a log line."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GalleryError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        return []
    if not isinstance(data, list):
        raise GalleryError(f"{source}: a gallery index is a YAML list of entries, got a {type(data).__name__}")
    out: list[GalleryEntry] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            log.warning("%s: entry %d is not a mapping; skipped", source, i + 1)
            continue
        try:
            entry = GalleryEntry.model_validate({**item, "gallery": None})
        except ValidationError as exc:
            err = exc.errors()[0]
            log.warning("%s: entry %d (%s) skipped: %s: %s", source, i + 1, item.get("name"), ".".join(map(str, err["loc"])), err["msg"])
            continue
        entry.gallery = gallery
        out.append(entry)
    return out


class Galleries:
    """The configured galleries with their indexes cached for a few minutes (LocalAI caches too)."""

    def __init__(self, refs: list[GalleryRef]) -> None:
        self.refs = refs
        self._cache: dict[tuple[str, str], tuple[float, list[GalleryEntry]]] = {}
        self._lock = threading.Lock()

    def fetch(self, ref: GalleryRef, refresh: bool = False) -> list[GalleryEntry]:
        key = (ref.name, ref.url)
        with self._lock:
            hit = self._cache.get(key)
        if hit and not refresh and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        errors = []
        for url in (ref.url, *ref.mirrors):
            try:
                text = read_text(url)
            except SourceError as exc:
                errors.append(str(exc))
                continue
            entries = parse_index(text, ref, source=f"gallery {ref.name!r} ({url})")
            with self._lock:
                self._cache[key] = (time.monotonic(), entries)
            return entries
        raise GalleryError(f"gallery {ref.name!r}: " + "; ".join(errors))

    def entries(self, gallery: str | None = None, refresh: bool = False) -> tuple[list[GalleryEntry], list[str]]:
        """Every entry of every gallery (or of ``gallery``), and the errors of galleries that could not be read."""
        refs = self.select(gallery)
        out: list[GalleryEntry] = []
        errors: list[str] = []
        for ref in refs:
            try:
                out.extend(self.fetch(ref, refresh))
            except GalleryError as exc:
                errors.append(str(exc))
        return out, errors

    def select(self, gallery: str | None) -> list[GalleryRef]:
        if gallery is None:
            return self.refs
        refs = [r for r in self.refs if r.name.lower() == gallery.lower()]
        if not refs:
            raise GalleryError(f"no gallery named {gallery!r}; configured: {', '.join(r.name for r in self.refs) or 'none'}")
        return refs

    def find(self, ident: str, gallery: str | None = None) -> GalleryEntry:
        """An entry by ``name`` or ``gallery@name`` (case-insensitive, as LocalAI), first gallery first."""
        if "@" in ident:
            gallery, _, name = ident.partition("@")
        else:
            name = ident
        if not self.refs:
            raise GalleryError("no model galleries are configured: set --galleries or LOCALAI_GALLERIES")
        entries, errors = self.entries(gallery)
        if errors and not entries:
            raise GalleryUnreachable(errors)
        for entry in entries:
            if entry.name.lower() == name.lower():
                return entry
        where = f"gallery {gallery!r}" if gallery else "the configured galleries"
        more = f" ({'; '.join(errors)})" if errors else ""
        raise GalleryError(f"no model named {name!r} in {where}{more}")
