"""An install plan: the model YAML a gallery entry (plus a request) becomes, and the files it needs.

LocalAI's order: the base config the entry's ``url`` points at, then ``config_file``, then the model's
``name``, then ``overrides`` (the request's overrides win over the entry's). LocalAI's Go templates cannot
run here (templates are Jinja2): they are dropped and the model file's own chat template is used instead,
and the written YAML says so.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from localai.config import ModelConfig, resolve_model_file
from localai.install.models.index import BaseConfig, FileSpec, GalleryEntry, GalleryError, PromptTemplate
from localai.install.models.paths import UnsafePath, check_model_name, target_path
from localai.install.models.sources import SourceError, local_sibling, read_text

_GO_TEMPLATE = re.compile(r"\{\{-?\s*(?:\.|\$|if\s|else\b|end\b|range\s|with\s|toJson\b|template\s|printf\s|len\s|eq\s)")


class ApplyRequest(BaseModel):
    """``POST /models/apply``'s body (LocalAI's ``GalleryModel`` plus ``id``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = ""
    url: str = ""
    name: str = ""
    overrides: dict[str, Any] = Field(default_factory=dict)
    config_file: dict[str, Any] = Field(default_factory=dict)
    files: list[FileSpec] = Field(default_factory=list)

    @field_validator("overrides", "config_file", mode="before")
    @classmethod
    def _none_map(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("files", mode="before")
    @classmethod
    def _none_list(cls, v: Any) -> Any:
        return [] if v is None else v


@dataclass
class Plan:
    name: str
    config: dict[str, Any]
    files: list[FileSpec]
    prompt_templates: list[PromptTemplate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = ""          # gallery@name or the url installed from
    entry: GalleryEntry | None = None

    @property
    def backend(self) -> str | None:
        value = self.config.get("backend")
        return str(value) if value else None


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` wins; maps merge recursively, anything else (lists included) is replaced, as mergo does."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_base(url: str, gallery_url: str | None) -> BaseConfig:
    """The base config an entry's ``url`` names (a ``github:`` one is read from beside a local index first)."""
    where = (local_sibling(url, gallery_url) if gallery_url else None) or url
    try:
        text = read_text(where, base=gallery_url)
    except SourceError as exc:
        raise GalleryError(f"base config {url}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GalleryError(f"base config {url} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise GalleryError(f"base config {url} is not a mapping")
    try:
        return BaseConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise GalleryError(f"base config {url}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from exc


def _drop_go_templates(config: dict[str, Any], templates: list[PromptTemplate], notes: list[str]) -> None:
    tmpl = config.get("template")
    if not isinstance(tmpl, dict):
        return
    names = {t.name for t in templates}
    dropped = []
    for key in ("chat", "chat_message", "completion", "function", "edit", "multimodal", "reply_prefix"):
        value = tmpl.get(key)
        if not isinstance(value, str) or not value.strip():
            continue
        file_ref = "{{" not in value and "{%" not in value and (value.strip() in names or "\n" not in value.strip() and " " not in value.strip())
        if _GO_TEMPLATE.search(value) or file_ref:
            dropped.append(key)
            del tmpl[key]
    if not dropped:
        return
    if any(k in dropped for k in ("chat", "chat_message", "function")):
        tmpl["use_tokenizer_template"] = True
    notes.append(f"LocalAI Go template(s) template.{', template.'.join(dropped)} dropped (localai templates are Jinja2); "
                 "the model file's own chat template is used instead (template.use_tokenizer_template)")


def _merge_files(groups: list[list[FileSpec]]) -> list[FileSpec]:
    seen: dict[str, FileSpec] = {}
    for group in groups:
        for f in group:
            prev = seen.get(f.filename)
            if prev is not None and (prev.uri != f.uri or (prev.sha256 and f.sha256 and prev.sha256 != f.sha256)):
                raise GalleryError(f"file {f.filename!r} is listed twice with different sources")
            if prev is None or (f.sha256 and not prev.sha256):
                seen[f.filename] = f
    return list(seen.values())


def build_plan(request: ApplyRequest, entry: GalleryEntry | None, models_path: Path) -> Plan:
    """Resolve the config and files to install; every name and path is checked before anything is written."""
    base = BaseConfig()
    gallery_url = entry.gallery.url if entry and entry.gallery else None
    url = entry.url if entry is not None else request.url
    if url:
        base = load_base(url, gallery_url)
    if entry is None and not url:
        raise GalleryError("give the gallery model's id (\"gallery@name\" or \"name\") or the url of a model config")
    name = request.name or (entry.name if entry is not None else base.name)
    if not name:
        raise GalleryError(f"the config at {url} has no name; give one in the request's \"name\"")
    try:
        check_model_name(name)
    except UnsafePath as exc:
        raise GalleryError(str(exc)) from exc
    config = dict(base.config_file)
    if entry is not None:
        config = deep_merge(config, entry.config_file)
    config = deep_merge(config, request.config_file)
    config["name"] = name
    overrides = deep_merge(entry.overrides if entry is not None else {}, request.overrides)
    config = deep_merge(config, overrides)
    config["name"] = name  # overrides cannot rename the file's model away from <name>.yaml
    if entry is not None and entry.description and "description" not in config:
        config["description"] = entry.description.strip()
    files = _merge_files([base.files, request.files, entry.files if entry is not None else []])
    if not (config.keys() - {"name", "description"}) and not files:
        raise GalleryError(f"gallery model {name!r} installs nothing: it declares no url, config_file, overrides or files")
    templates = list(base.prompt_templates) + (list(entry.prompt_templates) if entry is not None else [])
    notes: list[str] = []
    _drop_go_templates(config, templates, notes)
    try:
        for f in files:
            target_path(models_path, f.filename)
        for t in templates:
            check_model_name(t.name)
        cfg = ModelConfig.model_validate(config)
        if cfg.parameters.model:
            resolve_model_file(models_path, cfg.parameters.model)
        if cfg.mmproj:
            resolve_model_file(models_path, cfg.mmproj)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise GalleryError(f"the merged config of {name!r} is invalid: {'.'.join(map(str, err['loc']))}: {err['msg']}") from exc
    except ValueError as exc:  # UnsafePath included
        raise GalleryError(f"gallery model {name!r} refused: {exc}") from exc
    for f in files:
        if f.sha256 and not re.fullmatch(r"[0-9a-f]{64}", f.sha256):
            raise GalleryError(f"file {f.filename!r}: sha256 {f.sha256!r} is not 64 hex digits")
    return Plan(name=name, config=config, files=files, prompt_templates=templates, notes=notes,
                source=entry.id if entry is not None else url, entry=entry)
