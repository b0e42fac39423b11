"""The models the server offers: configs joined with the backend that serves each."""

from __future__ import annotations

import functools
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localai.config import ConfigProblem, ModelConfig, load_folder, resolve_model_file, warn_unknown_keys
from localai.registry.backends import Backend, BackendError, Registry
from localai.registry.model_kind import ModelKind, model_kind

log = logging.getLogger("localai.registry.catalog")


@dataclass
class ModelEntry:
    config: ModelConfig
    file: str
    backend: Backend | None = None
    model_path: Path | None = None
    mmproj_path: Path | None = None  # the YAML's ``mmproj:`` (a multimodal projector) inside the models folder
    prompt_cache_path: Path | None = None  # the YAML's ``prompt_cache_path:`` inside the models folder
    options: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def usable(self) -> bool:
        return not self.problems and self.backend is not None

    def usecases(self) -> set[str]:
        """What the model serves: ``chat``, ``completion``, ``embeddings``, ``image`` (LocalAI's known_usecases wins)."""
        if self.config.known_usecases:
            return {u.lower().replace("flag_", "") for u in self.config.known_usecases}
        caps = set(self.backend.capabilities) - {"prompt_cache"} if self.backend else {"chat", "completion"}
        if self.config.embeddings:
            return {"embeddings"} | (caps & {"tokenize"})
        if "vision" in caps and not self.takes_images():
            caps.discard("vision")
        return caps - {"embeddings"}

    @functools.cached_property
    def kind(self) -> ModelKind | None:
        """Base or instruction-tuned, and why (:mod:`localai.registry.model_kind`); the GGUF header is read once."""
        return model_kind(self.config, self.model_path) if self.usecases() & {"chat", "completion"} else None

    def takes_images(self) -> bool:
        """Whether this model accepts images, from its files before it loads: an ``mmproj:`` projector, or an HF
        folder whose ``config.json`` has a ``vision_config`` (image-text-to-text models)."""
        if self.config.mmproj:
            return True
        config = self.model_path / "config.json" if self.model_path is not None else None
        try:
            return config is not None and config.is_file() and "vision_config" in json.loads(config.read_text())
        except (OSError, ValueError):
            return False

    def worker_config(self) -> dict[str, Any]:
        """The config a worker loads: file fields made absolute (the worker does not know the models folder)."""
        config = self.config.model_dump(mode="json")
        if self.mmproj_path is not None:
            config["mmproj"] = str(self.mmproj_path)
        if self.prompt_cache_path is not None:
            config["prompt_cache_path"] = str(self.prompt_cache_path)
        return config


class Catalog:
    """Loads a models folder against a backend registry; broken entries carry their problems."""

    def __init__(self, models_path: Path, registry: Registry) -> None:
        self.models_path = models_path
        self.registry = registry
        self.entries: dict[str, ModelEntry] = {}
        self.problems: list[ConfigProblem] = []
        self._reload_lock = threading.Lock()
        self._stamp: float | None = None

    def load(self) -> Catalog:
        self._stamp = self._folder_stamp()
        configs, problems = load_folder(self.models_path)
        for problem in problems:
            log.error("model config: %s", problem)
        entries: dict[str, ModelEntry] = {}
        for cfg, file in configs:
            if cfg.name in entries:
                msg = f"duplicate model name {cfg.name!r} (also in {entries[cfg.name].file}); ignored"
                problems.append(ConfigProblem(file=file, model=cfg.name, message=msg))
                log.error("%s: %s", file, msg)
                continue
            old = self.entries.get(cfg.name)
            # An unchanged config keeps its entry, so a loaded model's worker stays attached to it.
            if old is not None and old.file == file and old.config == cfg:
                entries[cfg.name] = old
            else:
                entries[cfg.name] = self._entry(cfg, file)
        self.entries, self.problems = entries, problems  # swapped whole: readers never see a half-built catalog
        return self

    def reload(self) -> Catalog:
        """Re-read the models folder (a gallery install or delete, or ``POST /models/reload``); thread-safe."""
        with self._reload_lock:
            before = set(self.entries)
            self.load()
            added, removed = set(self.entries) - before, before - set(self.entries)
            if added or removed:
                log.info("models folder reloaded: added %s, removed %s", sorted(added) or "none", sorted(removed) or "none")
        return self

    def _folder_stamp(self) -> float | None:
        try:
            return self.models_path.stat().st_mtime
        except OSError:
            return None

    def _entry(self, cfg: ModelConfig, file: str) -> ModelEntry:
        entry = ModelEntry(config=cfg, file=file)
        if cfg.parameters.model:
            try:
                entry.model_path = resolve_model_file(self.models_path, cfg.parameters.model)
            except ValueError as exc:
                entry.problems.append(f"parameters.model: {exc}")
        if cfg.mmproj:
            try:
                entry.mmproj_path = resolve_model_file(self.models_path, cfg.mmproj)
            except ValueError as exc:
                entry.problems.append(f"mmproj: {exc}")
        try:
            if cfg.backend:
                entry.backend = self.registry.resolve(cfg.backend)
            elif cfg.parameters.model:
                entry.backend = self.registry.for_file(cfg.parameters.model)
                if entry.backend is None:
                    entry.problems.append(
                        f"no backend given and none installed serves {cfg.parameters.model!r}; "
                        "set backend: (installed: " + (", ".join(sorted(self.registry.backends)) or "none") + ")"
                    )
            else:
                entry.problems.append("no backend and no parameters.model given")
        except BackendError as exc:
            entry.problems.append(str(exc))
        if cfg.prompt_cache_path and entry.backend is not None:
            if "prompt_cache" not in entry.backend.capabilities:
                entry.problems.append(f"prompt_cache_path: backend {entry.backend.name} keeps no prompt cache file "
                                      "(backends that do: those declaring the prompt_cache capability, e.g. llama-cpp)")
            else:
                try:
                    entry.prompt_cache_path = resolve_model_file(self.models_path, cfg.prompt_cache_path)
                except ValueError as exc:
                    entry.problems.append(f"prompt_cache_path: {exc}")
        if entry.backend is not None and entry.backend.unavailable:
            # Registered but unable to run here (a torch backend's plugin in the server's environment without its
            # engine): not served, and `localai models` says how to fix it.
            entry.problems.append(f"backend {entry.backend.name} cannot run here: {entry.backend.unavailable}")
        if entry.backend is not None:
            try:
                parsed = self.registry.parse_options(entry.backend, list(cfg.options), cfg)
                entry.options = parsed or {}
                if parsed is None and cfg.options:
                    log.warning("%s: model %r: backend %s parses no options; %s ignored", file, cfg.name, entry.backend.name, cfg.options)
            except ValueError as exc:
                entry.problems.append(f"options: {exc}")
            except Exception as exc:  # noqa: BLE001 - a plugin's broken parser is this model's problem, not the server's
                entry.problems.append(f"options: {type(exc).__name__}: {exc}")
        warn_unknown_keys(file, cfg, entry.backend.yaml_fields if entry.backend else ())
        for problem in entry.problems:
            log.error("%s: model %r: %s", file, cfg.name, problem)
        return entry

    def get(self, name: str) -> ModelEntry | None:
        entry = self.entries.get(name)
        if entry is None and self._stamp != self._folder_stamp():
            # A config written into the folder since the last load (e.g. by ``localai models install``).
            entry = self.reload().entries.get(name)
        return entry

    def first_for(self, usecase: str) -> ModelEntry | None:
        """The first usable model serving ``usecase``, for requests that name no model."""
        for entry in self.entries.values():
            if entry.usable and usecase in entry.usecases():
                return entry
        return None
