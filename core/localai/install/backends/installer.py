"""Installing a backend into its own virtual environment: build it aside, probe it, move it into place.

An install that fails or is interrupted (pip error, no network, Ctrl-C, a cancelled job) leaves nothing: the
environment is built in ``<backends>/.install-<pid>-<id>`` and renamed into ``<backends>/<name>`` only once its
plugin imported and registered. pip runs with the machine's own configuration (indexes, find-links, constraints).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import importlib.util
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from localai.install.backends import gallery as gal
from localai.install.backends import store
from localai.names import backend_dir, validate_name

log = logging.getLogger("localai.install.backends")

Progress = Callable[[str, "float | None"], None]
_MOVE_LOCK = threading.Lock()
REQUIREMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*((==|>=|<=|~=|!=|<|>|===|@).+)?$")


class InstallError(Exception):
    """An install, uninstall or upgrade that could not be done; the message says what failed and what to do."""


class NotInstalled(InstallError):
    """No installed backend has that name."""


class Cancelled(InstallError):
    """The install was cancelled (a job cancel, or Ctrl-C)."""


def canonical_dist(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def core_requirement() -> list[str]:
    """pip arguments for ``localai-core`` as the server has it: editable from the same source folder when the server's
    is editable (a checkout: the environment follows the source, as the server does), the source folder when it was
    installed from one, else ``localai-core==<version>``."""
    from localai import __version__

    try:
        dist = importlib.metadata.distribution("localai-core")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        try:
            direct = json.loads(dist.read_text("direct_url.json") or "null")
        except ValueError:
            direct = None
        if direct and str(direct.get("url", "")).startswith("file://") and "dir_info" in direct:
            path = Path(unquote(urlparse(direct["url"]).path))
            if (path / "pyproject.toml").is_file():
                return ["-e", str(path)] if (direct.get("dir_info") or {}).get("editable") else [str(path)]
        return [f"localai-core=={dist.version}"]
    root = Path(__file__).resolve().parents[4]
    project = gal.local_project(str(root))
    if project and project[0] == "localai-core":
        return [str(root)]
    return [f"localai-core=={__version__}"]


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("./", "../", "/", "~", "file://")) or os.sep in spec or spec in (".", "..")


def resolve_spec(spec: str, galleries: Any = (), capability: str | None = None) -> dict[str, Any]:
    """What to install for ``spec``: a local plugin folder, a gallery name/alias (meta backends resolved), or a pip
    requirement (``pip:NAME``, a requirement with a version/extras/URL, or a ``localai-*`` distribution)."""
    spec = spec.strip()
    if not spec:
        raise InstallError("nothing to install: give a gallery name, a plugin folder or a pip requirement")
    if _looks_like_path(spec):
        extras = ""
        if spec.endswith("]") and "[" in spec:  # ./plugins/diffusers[engine]
            spec, extras = spec[: spec.rindex("[")], spec[spec.rindex("["):]
        path = Path(spec[7:] if spec.startswith("file://") else spec).expanduser().resolve()
        if not path.is_dir() or not ((path / "pyproject.toml").is_file() or (path / "setup.py").is_file()):
            raise InstallError(f"{spec!r} is not a plugin folder (no pyproject.toml or setup.py in {path})")
        project = gal.local_project(str(path))
        return {"kind": "path", "spec": str(path) + extras, "plugin": str(path) + extras, "requirements": [],
                "distribution": project[0] if project else None, "default_name": None, "uri": str(path)}
    if spec.startswith("pip:"):
        req = spec[4:].strip()
        if not REQUIREMENT_RE.match(req):
            raise InstallError(f"{req!r} is not a pip requirement (e.g. localai-foo==1.2)")
        return {"kind": "requirement", "spec": spec, "plugin": req, "requirements": [],
                "distribution": re.split(r"[\[\s=<>~!@]", req, maxsplit=1)[0], "default_name": None, "uri": req}
    gals = gal.galleries(galleries or None)
    entry = gal.find(spec, gals)
    if entry is not None:
        target, key = gal.concrete(entry, gals, capability)
        extra, plugin = gal.requirements(target)
        project = gal.local_project(plugin.split("[", 1)[0])
        dist = project[0] if project else re.split(r"[\[\s=<>~!@]", plugin, maxsplit=1)[0]
        # A flavour answers to its meta backend's names; one installed by the meta name answers to the flavour's.
        fallback = [target.name] if entry.meta else [n for m in gal.metas_for(target, gals) for n in (m.name, *m.aliases)]
        return {"kind": "gallery", "spec": spec, "fallback_names": fallback, "plugin": plugin, "requirements": extra, "distribution": dist,
                "default_name": entry.name, "uri": str(target.data.get("uri") or plugin), "gallery": entry.gallery,
                "remove": [str(r) for r in target.data.get("remove") or []], "build": gal.build_step(target),
                "gallery_entry": target.name, "meta_backend": entry.name if entry.meta else None, "capability": key,
                "gallery_index": None if entry.index == str(gal.SHIPPED) else entry.index,
                "aliases": entry.aliases, "description": target.data.get("description") or entry.data.get("description", "")}
    m = REQUIREMENT_RE.match(spec)
    if m and (m.group(1) or m.group(2) or spec.lower().startswith("localai-")):
        return {"kind": "requirement", "spec": spec, "plugin": spec, "requirements": [],
                "distribution": re.split(r"[\[\s=<>~!@]", spec, maxsplit=1)[0], "default_name": None, "uri": spec}
    known = ", ".join(e.name for g in gals for e in g.entries)
    raise InstallError(f"unknown backend {spec!r}: no backend gallery lists it (known: {known}). "
                       f"For a plugin folder give a path (./plugins/foo); for a pip distribution a requirement "
                       f"(localai-foo, localai-foo==1.2 or pip:foo)")


def _prune_stale(root: Path) -> None:
    """Remove work folders left by an install killed outright (SIGKILL, power loss): their pid is gone."""
    for folder in root.glob(".install-*"):
        try:
            pid = int(folder.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)
    for folder in root.glob(".remove-*"):
        shutil.rmtree(folder, ignore_errors=True)


class _Pip:
    """One pip run (or an engine build) with its output turned into progress steps, cancellable between lines."""

    def __init__(self, cmd: list[str], progress: Progress, cancelled: Callable[[], bool] | None,
                 what: str = "pip could not install it") -> None:
        self.cmd = cmd
        self.what = what
        self.progress = progress
        self.cancelled = cancelled
        self.lines: list[str] = []
        self.downloaded = 0.0
        self.collected = 0

    def _step(self, line: str) -> None:
        m = re.match(r"\s*Downloading (\S+) \(([\d.]+) (kB|MB|GB)\)", line)
        if m:
            self.downloaded += float(m.group(2)) * {"kB": 1e-3, "MB": 1, "GB": 1e3}[m.group(3)]
            self.progress(f"downloading {m.group(1).rsplit('/', 1)[-1]} ({m.group(2)} {m.group(3)}; {self.downloaded:.1f} MB so far)", None)
        elif line.startswith("Collecting ") or line.startswith("Processing "):
            self.collected += 1
            self.progress(f"resolving: {line.split(' ', 1)[1].strip()}", min(0.15 + 0.01 * self.collected, 0.5))
        elif line.startswith("Building wheel") or line.startswith("  Building wheel"):
            self.progress(line.strip().lower(), None)
        elif line.startswith("Installing collected packages:"):
            n = len(line.split(":", 1)[1].split(","))
            self.progress(f"installing {n} packages", 0.75)
        elif line.startswith("[build] "):
            self.progress(line[8:].strip(), None)
        elif line.startswith("Successfully installed"):
            self.progress(f"installed {len(line.split()) - 2} packages"
                          + (f" ({self.downloaded:.1f} MB downloaded)" if self.downloaded else ""), 0.85)

    def run(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", PIP_PROGRESS_BAR="off")
        proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, bufsize=1, env=env)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        try:
            while True:
                if self.cancelled is not None and self.cancelled():
                    raise Cancelled("install cancelled")
                try:
                    line = lines.get(timeout=0.25)
                except queue.Empty:
                    continue
                if line is None:
                    break
                self.lines.append(line)
                log.debug("pip: %s", line)
                self._step(line)
            proc.wait()
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        if proc.returncode != 0:
            raise InstallError(f"{self.what}:\n" + self.relevant())

    def relevant(self) -> str:
        """pip's error lines with a little context, not its whole log."""
        idx = [i for i, line in enumerate(self.lines) if line.startswith("ERROR") or "error:" in line.lower()]
        if not idx:
            return "\n".join(self.lines[-15:])
        start = max(0, idx[0] - 6)
        return "\n".join(self.lines[start: idx[-1] + 3][-30:])


def _create_venv(path: Path, with_pip: bool) -> None:
    import venv

    venv.EnvBuilder(with_pip=with_pip, symlinks=os.name != "nt", clear=True).create(str(path))


def _probe(python: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("LOCALAI_PLUGINS", "LOCALAI_DISABLE_ENTRY_POINTS", "PYTHONPATH")}
    r = subprocess.run([str(python), "-m", "localai.install.backends.probe"], capture_output=True, text=True, timeout=300,
                       env=env, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise InstallError(f"the new environment could not import its plugins:\n{r.stderr.strip()[-3000:]}")
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise InstallError(f"the environment's probe printed no result:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}") from None


def _build_engine(step: dict[str, Any], pip: list[str], python: Path, report: Progress,
                  cancelled: Callable[[], bool] | None) -> list[str]:
    """An engine compiled at install (the gallery entry's ``build:``): the runner plugin goes in first, without its
    dependencies, and builds (or finds cached) the wheel, which then joins the environment's one pip resolve."""
    report(f"installing the build runner {step['runner']}", 0.06)
    _Pip([*pip, "install", "--disable-pip-version-check", "--no-input", "--no-deps", step["runner"]], report, cancelled).run()
    runner = _Pip([str(python), "-m", step["module"], "--spec", json.dumps(step["spec"]), "--pip", json.dumps(pip)], report, cancelled,
                  what=f"building the engine failed ({step['module']})")
    runner.run()
    try:
        wheel = json.loads(runner.lines[-1])["wheel"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise InstallError(f"the engine build printed no wheel:\n{runner.relevant()}") from None
    report(f"engine built: {Path(wheel).name}", 0.1)
    return [wheel]


def install(spec: str, *, backends_path: Path | str, name: str | None = None, aliases: Iterable[str] = (),
            force: bool = False, progress: Progress | None = None, cancelled: Callable[[], bool] | None = None,
            galleries: Any = (), capability: str | None = None) -> dict[str, Any]:
    """Install ``spec`` (gallery name, plugin folder or pip requirement) into its own environment.

    ``progress(message, fraction)`` hears each step; ``cancelled()`` returning true stops the install.
    Returns the installed backend's metadata (see :func:`localai.install.backends.store.read`).
    """
    report: Progress = progress or (lambda message, fraction: log.info("%s", message))
    started = time.monotonic()
    aliases = [validate_name(a) for a in aliases]
    wanted = validate_name(name) if name else None
    src = resolve_spec(spec, galleries, capability)
    wanted = wanted or src.get("default_name")
    root = Path(backends_path).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    _prune_stale(root)
    if wanted and not force and backend_dir(root, wanted).exists():
        raise InstallError(f"backend {wanted!r} is already installed in {root}; use --force to reinstall it")
    work = root / f".install-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        venv_dir = work / store.VENV
        pip_here = importlib.util.find_spec("pip") is not None
        report(f"creating environment {venv_dir.name} for {src['spec']}", 0.05)
        _create_venv(venv_dir, with_pip=not pip_here)
        python = store.interpreter_of(work)
        if cancelled is not None and cancelled():
            raise Cancelled("install cancelled")
        core = core_requirement()
        pip = [sys.executable, "-m", "pip", "--python", str(python)] if pip_here else [str(python), "-m", "pip"]
        built = _build_engine(src["build"], pip, python, report, cancelled) if src.get("build") else []
        reqs = [*core, *src["requirements"], src["plugin"], *built]
        report(f"resolving {' '.join(reqs)}", 0.1)
        _Pip([*pip, "install", "--disable-pip-version-check", "--no-input", *reqs], report, cancelled).run()
        if src.get("remove"):
            # Packages the engine drags in that do not import beside this torch (PyPI's torchvision against the
            # CPU torch): the gallery entry says which; the engine runs without them.
            report(f"removing {' '.join(src['remove'])}", 0.85)
            _Pip([*pip, "uninstall", "-y", "--disable-pip-version-check", *src["remove"]], report, cancelled).run()
        report("probing the plugin in its environment", 0.9)
        probe = _probe(python)
        target = canonical_dist(src["distribution"]) if src.get("distribution") else None
        mine = [b for b in probe["backends"] if target is None or canonical_dist(b.get("distribution") or "") == target]
        if not mine:
            errors = [f"{n}: {p['error']}" for n, p in probe["plugins"].items() if p.get("error")] + probe["errors"]
            found = ", ".join(f"{b['name']} ({b.get('distribution')})" for b in probe["backends"]) or "none"
            raise InstallError(f"{src['spec']} installed but registers no backend through the localai.backends entry "
                               f"point (backends found: {found})" + ("; errors: " + "; ".join(errors) if errors else ""))
        final = validate_name(wanted or mine[0]["name"])
        dest = backend_dir(root, final)
        all_aliases = list(dict.fromkeys([*aliases, *(validate_name(a) for a in src.get("aliases") or [])]))
        meta = {
            "name": final,
            "alias": all_aliases[0] if all_aliases else "",
            "aliases": all_aliases,
            "installed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "version": mine[0].get("version"),
            "uri": src["uri"],
            "description": src.get("description") or mine[0].get("description", ""),
            "distribution": mine[0].get("distribution"),
            "capabilities": sorted({c for b in mine for c in b.get("capabilities", [])}),
            "interpreter": str(store.interpreter_of(Path(".")).as_posix()),
            "python_version": probe["python_version"],
            "localai_version": probe["localai_version"],
            "core": " ".join(core),
            "source": {k: src.get(k) for k in ("kind", "spec", "plugin", "requirements", "gallery", "gallery_index",
                                               "gallery_entry", "meta_backend", "capability", "build")},
            "backends": mine,
            # Names it answers to while no other installed backend claims them (see registration.link_fallbacks).
            "fallback_names": [n for n in dict.fromkeys(map(validate_name, src.get("fallback_names") or []))
                               if n != final and n not in all_aliases],
            "install_seconds": round(time.monotonic() - started, 1),
        }
        (work / store.METADATA).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        with _MOVE_LOCK:
            if dest.exists():
                if not force:
                    raise InstallError(f"backend {final!r} is already installed in {root}; use --force to reinstall it")
                old = root / f".remove-{uuid.uuid4().hex[:8]}"
                dest.rename(old)
                work.rename(dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    elapsed = time.monotonic() - started
    report(f"installed backend {final} ({meta['distribution']} {meta['version'] or ''}) in {elapsed:.1f} s", 1.0)
    return store.read(dest)


def uninstall(name: str, *, backends_path: Path | str) -> dict[str, Any]:
    """Remove an installed backend (by name or alias); returns its metadata. :class:`NotInstalled` if none."""
    validate_name(name)
    meta = store.find(backends_path, name)
    if meta is None:
        raise NotInstalled(f"backend {name!r} is not installed in {Path(backends_path).resolve()}")
    root = Path(backends_path).resolve()
    folder = backend_dir(root, meta["name"])
    trash = root / f".remove-{uuid.uuid4().hex[:8]}"
    with _MOVE_LOCK:
        folder.rename(trash)  # gone at once; the delete can take a while for big environments
    shutil.rmtree(trash, ignore_errors=True)
    return meta


def upgrade(names: Iterable[str] = (), *, backends_path: Path | str, progress: Progress | None = None,
            cancelled: Callable[[], bool] | None = None, galleries: Any = ()) -> list[dict[str, Any]]:
    """Reinstall backends (all when ``names`` is empty) from what they were installed from, in fresh environments."""
    metas = [store.find(backends_path, n) for n in names] if names else store.installed(backends_path)
    missing = [n for n, m in zip(names, metas) if m is None]
    if missing:
        raise NotInstalled(f"not installed: {', '.join(missing)}")
    out = []
    for meta in metas:
        assert meta is not None
        src = meta.get("source") or {}
        spec = src.get("spec") or meta.get("uri")
        if not spec:
            raise InstallError(f"backend {meta['name']!r} records no source to upgrade from; reinstall it with --force")
        index = src.get("gallery_index")
        out.append(install(spec, backends_path=backends_path, name=meta["name"], aliases=meta.get("aliases") or (),
                           force=True, progress=progress, cancelled=cancelled,
                           galleries=galleries or ([index] if index else ()), capability=src.get("capability")))
    return out
