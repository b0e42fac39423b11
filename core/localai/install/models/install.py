"""Installing and deleting gallery models: the work behind ``POST /models/apply``, ``localai models install``
and ``POST /models/delete/{name}``.

An install resolves the entry into a :class:`~localai.install.models.merge.Plan` (every name and path checked), makes
sure its backend is there (installing it from the backend gallery when it can), downloads the files, and only
then writes ``<name>.yaml`` (plus LocalAI's ``._gallery_<name>.yaml`` record) and reloads the catalog, so a
failed or cancelled install leaves no config behind.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import yaml

from localai.config import parse_yaml_file, resolve_model_file
from localai.install.jobs import human_size
from localai.install.models.download import Fetched, fetch_all
from localai.install.models.index import Galleries, GalleryError
from localai.install.models.merge import ApplyRequest, Plan, build_plan
from localai.install.models.paths import GALLERY_RECORD_PREFIX, UnsafePath, check_model_name, target_path
from localai.install.models.sources import SourceError, is_url, resolve
from localai.registry.backends import KNOWN_BACKENDS, BackendError, normalise

log = logging.getLogger("localai.install.models")

FileProgress = Callable[[str, int, "int | None"], None]


class JobLike(Protocol):
    def update(self, **fields: Any) -> None: ...
    def check_cancelled(self) -> None: ...
    @property
    def cancel_requested(self) -> bool: ...


def record_path(models_path: Path, name: str) -> Path:
    return models_path / f"{GALLERY_RECORD_PREFIX}{name}.yaml"


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class GalleryService:
    """One per server (and one per CLI run): galleries, the models folder, and what to tell when it changes."""

    def __init__(self, models_path: Path, galleries: Galleries, *, catalog: Any = None, registry: Any = None,
                 backends_path: Path | None = None, concurrency: int = 4,
                 refresh_backends: Callable[[], None] | None = None, backend_galleries: list[str] | None = None) -> None:
        self.models_path = models_path
        self.galleries = galleries
        self.catalog = catalog
        self.registry = registry if registry is not None else getattr(catalog, "registry", None)
        self.backends_path = backends_path
        self.concurrency = concurrency
        self.refresh_backends = refresh_backends
        self.backend_galleries = list(backend_galleries or [])  # the server's --backend-galleries, as /backends uses them
        self._name_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    # ---- listing -------------------------------------------------------------------------------------------

    def is_installed(self, name: str) -> bool:
        if (self.models_path / f"{name}.yaml").is_file():
            return True
        return bool(self.catalog is not None and self.catalog.get(name) is not None)

    def available(self, gallery: str | None = None, refresh: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
        entries, errors = self.galleries.entries(gallery, refresh)
        return [e.metadata(self.is_installed(e.name)) for e in entries], errors

    # ---- install ---------------------------------------------------------------------------------------------

    def check_request_sources(self, request: ApplyRequest) -> None:
        """URLs a *request* brings (``url``, ``files[].uri``) may not reach private or loopback addresses (other
        than a configured gallery's host) nor local files outside the models folder, as LocalAI guards them."""
        trusted = set()
        for ref in self.galleries.refs:
            for u in (ref.url, *ref.mirrors):
                try:
                    parts = urlsplit(resolve(u))
                except SourceError:
                    continue
                trusted.add((parts.hostname, parts.port))
        for uri in [request.url, *(f.uri for f in request.files)]:
            if not uri:
                continue
            try:
                where = resolve(uri)
            except SourceError as exc:
                raise GalleryError(str(exc)) from exc
            if not is_url(where):
                if not Path(where).resolve().is_relative_to(self.models_path.resolve()):
                    raise GalleryError(f"{uri}: a request may read local files only inside the models folder")
                continue
            parts = urlsplit(where)
            if (parts.hostname, parts.port) in trusted:
                continue
            try:
                infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
            except OSError:
                continue  # unresolvable: the download itself reports "cannot reach"
            for info in infos:
                ip = ipaddress.ip_address(info[4][0])
                if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
                    raise GalleryError(f"{uri}: {parts.hostname} is a private or loopback address ({ip}); a request may "
                                       "reach such hosts only through a configured gallery")

    def plan(self, request: ApplyRequest, gallery: str | None = None) -> Plan:
        entry = None
        if request.id:
            if request.url:
                raise GalleryError("give either \"id\" (a gallery model) or \"url\" (a model config), not both")
            entry = self.galleries.find(request.id, gallery)
        return build_plan(request, entry, self.models_path)

    def _name_lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._name_locks.setdefault(name, threading.Lock())

    def install(self, request: ApplyRequest, job: JobLike, *, gallery: str | None = None,
                on_file: FileProgress | None = None, before_write: Callable[[str], None] | None = None) -> dict[str, Any]:
        """``before_write(name)`` runs just before the YAML is (re)written: the server stops a loaded worker there,
        so a reinstalled model is served with its new config."""
        job.update(message=f"resolving {request.id or request.url}")
        plan = self.plan(request, gallery)
        with self._name_lock(plan.name):
            return self._install(plan, job, on_file, before_write)

    def _install(self, plan: Plan, job: JobLike, on_file: FileProgress | None,
                 before_write: Callable[[str], None] | None = None) -> dict[str, Any]:
        self.models_path.mkdir(parents=True, exist_ok=True)
        self._check_name_free(plan.name)
        job.check_cancelled()
        self.ensure_backend(plan, job)
        job.check_cancelled()
        fetched = self._download(plan, job, on_file)
        job.check_cancelled()
        if before_write is not None:
            before_write(plan.name)
        for t in plan.prompt_templates:
            _write_atomic(self.models_path / f"{t.name}.tmpl", t.content)
        self._write_config(plan, fetched)
        problems = self._reload(plan.name)
        for note in plan.notes:
            log.warning("model %s: %s", plan.name, note)
        if problems:
            raise GalleryError(f"model {plan.name!r} was installed ({plan.name}.yaml) but cannot be served: {problems}")
        log.info("installed model %s from %s (%d file(s))", plan.name, plan.source, len(fetched))
        job.update(message=f"installed {plan.name}" + (f" ({'; '.join(plan.notes)})" if plan.notes else ""))
        return {"name": plan.name, "config": f"{plan.name}.yaml", "files": [f.spec.filename for f in fetched], "notes": plan.notes}

    def _check_name_free(self, name: str) -> None:
        if self.catalog is None:
            return
        entry = self.catalog.get(name)
        if entry is not None and entry.file not in (f"{name}.yaml", f"{name}.yml", f"{name}.gguf"):
            raise GalleryError(f"a model named {name!r} is already configured in {entry.file}; "
                               "install under another name (the request's \"name\")")

    def ensure_backend(self, plan: Plan, job: JobLike) -> None:
        """The config's backend is installed, or gets installed from the backend gallery, or the job fails saying how."""
        name = plan.backend
        if not name or self.registry is None:
            return
        try:
            present = self.registry.resolve(name)
            if not present.unavailable:
                return
            # Registered here without its engine (e.g. torch backends in the server's venv): its environment is missing.
            reason = f"{present.name} is registered but cannot run here: {present.unavailable}"
        except BackendError as exc:
            reason = str(exc)
        try:
            backend_envs = importlib.import_module("localai.install.backends")  # through sys.modules: tests swap it
        except ImportError:
            raise GalleryError(f"model {plan.name!r} needs backend {name!r}, which is not installed ({reason}); "
                               f"install it with: localai backends install {name}") from None
        backends_path = self.backends_path or Path("backends")
        try:
            offered = backend_envs.available(backends_path, self.backend_galleries)
        except Exception as exc:  # an unreachable backend gallery is a reason, not a crash
            raise GalleryError(f"model {plan.name!r} needs backend {name!r}, which is not installed ({reason}), and the "
                               f"backend gallery cannot be read ({exc}); install it with: localai backends install {name}") from exc
        key = normalise(name)
        match = next((b for b in offered if normalise(str(b.get("name", ""))) == key
                      or key in {normalise(str(a)) for a in b.get("aliases", ()) or ()}), None)
        if match is None:
            dist = KNOWN_BACKENDS.get(key, (None,))[0]
            hint = f"pip install {dist}" if dist else f"localai backends install {name}"
            raise GalleryError(f"model {plan.name!r} needs backend {name!r}, which is not installed and no backend "
                               f"gallery offers it ({reason}); install it with: {hint}")
        if not match.get("installed"):
            job.update(message=f"installing backend {match.get('name', name)}")
            log.info("model %s needs backend %s: installing it from the backend gallery", plan.name, name)
            backend_envs.install(
                str(match.get("name", name)), backends_path=backends_path,
                progress=lambda message, fraction: job.update(message=f"backend {name}: {message}"),
                cancelled=lambda: job.cancel_requested, galleries=self.backend_galleries,
            )
        if self.refresh_backends is not None:
            self.refresh_backends()
        try:
            present = self.registry.resolve(name)
        except BackendError as exc:
            raise GalleryError(f"backend {name!r} was installed but this server does not see it yet ({exc}); "
                               "restart the server to serve the model") from exc
        if present.unavailable:
            raise GalleryError(f"backend {name!r} is installed but cannot run here: {present.unavailable}")

    def _download(self, plan: Plan, job: JobLike, on_file: FileProgress | None) -> list[Fetched]:
        if not plan.files:
            return []
        lock = threading.Lock()
        state: dict[str, tuple[int, int | None]] = {}
        last = [0.0]

        def progress(file_name: str, done: int, total: int | None) -> None:
            if on_file is not None:
                on_file(file_name, done, total)
            with lock:
                state[file_name] = (done, total)
                now = time.monotonic()
                if now - last[0] < 0.2 and not (total is not None and done >= total):
                    return
                last[0] = now
                got = sum(d for d, _ in state.values())
                known = [t for _, t in state.values() if t]
                whole = sum(known) if len(known) == len(plan.files) else None
                pct = min(99.0, 100.0 * got / whole) if whole else 0.0
                job.update(progress=pct, file_name=file_name, file_size=total, downloaded_size=done,
                           message=f"processing file: {file_name}. Total: {human_size(total)}. Current: {human_size(done)}")

        job.update(message=f"downloading {len(plan.files)} file(s)")
        return fetch_all(plan.files, self.models_path, progress=progress, check=job.check_cancelled, concurrency=self.concurrency)

    def _write_config(self, plan: Plan, fetched: list[Fetched]) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        header = [f"# Installed by localai from {plan.source} on {stamp}."]
        header += [f"# Note: {n}." for n in plan.notes]
        config = {"name": plan.name, **{k: v for k, v in plan.config.items() if k != "name"}}
        body = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=120)
        _write_atomic(self.models_path / f"{plan.name}.yaml", "\n".join(header) + "\n" + body)
        entry = plan.entry
        record = {  # LocalAI's gallery record: what was installed, for upgrades and delete
            "name": plan.name,
            "description": entry.description if entry else "",
            "license": entry.license if entry else "",
            "urls": entry.urls if entry else [],
            "icon": entry.icon if entry else "",
            "config_file": body,
            "files": [f.spec.model_dump() for f in fetched],
            "prompt_templates": [t.model_dump() for t in plan.prompt_templates],
            "entry_name": entry.name if entry else "",
            "gallery": entry.gallery.name if entry and entry.gallery else "",
        }
        _write_atomic(record_path(self.models_path, plan.name), yaml.safe_dump(record, sort_keys=False, allow_unicode=True))

    def _reload(self, name: str) -> str:
        if self.catalog is None:
            return ""
        self.catalog.reload()
        entry = self.catalog.get(name)
        if entry is None:
            return "the catalog did not pick up the new config"
        return "; ".join(entry.problems) if entry.problems else ("" if entry.backend is not None else "no backend")

    # ---- delete ----------------------------------------------------------------------------------------------

    def config_file_of(self, name: str) -> Path:
        """``<name>.yaml`` holding only this model, or :class:`GalleryError` saying why it cannot be deleted."""
        check_model_name(name)
        for suffix in (".yaml", ".yml"):
            path = self.models_path / f"{name}{suffix}"
            if path.is_file():
                configs, _ = parse_yaml_file(path)
                if len(configs) > 1:
                    raise GalleryError(f"{path.name} defines {len(configs)} models; edit it by hand to remove {name!r}")
                return path
        entry = self.catalog.get(name) if self.catalog is not None else None
        if entry is not None:
            raise GalleryError(f"model {name!r} is defined in {entry.file}, not in its own {name}.yaml; edit that file by hand")
        raise LookupError(f"model {name!r} is not installed")

    def _files_of(self, config_path: Path) -> set[Path]:
        """Files a config uses: its ``parameters.model``/``mmproj`` and the files its gallery record lists."""
        out: set[Path] = set()
        configs, _ = parse_yaml_file(config_path)
        for cfg in configs:
            for rel in (cfg.parameters.model, cfg.mmproj):
                if rel:
                    try:
                        path = resolve_model_file(self.models_path, rel)
                    except ValueError:
                        continue
                    if path.is_file() or path.is_symlink():
                        out.add(path)
        name = config_path.stem
        record = record_path(self.models_path, name)
        if record.is_file():
            try:
                data = yaml.safe_load(record.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError):
                data = {}
            for f in data.get("files") or []:
                try:
                    out.add(target_path(self.models_path, str(f.get("filename", ""))))
                except (UnsafePath, AttributeError):
                    continue
        return {p.absolute() for p in out}

    def delete(self, name: str, job: JobLike) -> dict[str, Any]:
        """Remove ``<name>.yaml``, its gallery record, and the files no other model uses."""
        with self._name_lock(name):
            config = self.config_file_of(name)
            mine = self._files_of(config)
            others: set[Path] = set()
            for path in self.models_path.iterdir():
                if path.suffix.lower() in (".yaml", ".yml") and path.is_file() and path != config \
                        and not path.name.startswith(GALLERY_RECORD_PREFIX):
                    others |= self._files_of(path)
            removed, kept = [], []
            for path in sorted(mine):
                if path in others:
                    kept.append(path.name)
                    continue
                path.unlink(missing_ok=True)
                removed.append(str(path.relative_to(self.models_path.absolute())))
            record = record_path(self.models_path, name)
            if record.is_file():
                try:
                    data = yaml.safe_load(record.read_text(encoding="utf-8")) or {}
                    for t in data.get("prompt_templates") or []:
                        tmpl = self.models_path / f"{check_model_name(str(t.get('name')))}.tmpl"
                        tmpl.unlink(missing_ok=True)
                except (OSError, yaml.YAMLError, UnsafePath, AttributeError):
                    pass
                record.unlink()
            config.unlink()
            if self.catalog is not None:
                self.catalog.reload()
        log.info("deleted model %s (removed %s; kept, used by other models: %s)", name, removed or "no files", kept or "none")
        job.update(message=f"deleted {name}")
        return {"name": name, "removed": removed, "kept": kept}
