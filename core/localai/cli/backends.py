"""``localai backends install|uninstall|upgrade|list``: the command-line side of backend environments."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _printer(started: float) -> Callable[[str, float | None], None]:
    tty = sys.stderr.isatty()

    def progress(message: str, fraction: float | None) -> None:
        pct = f"{fraction * 100:3.0f}%" if fraction is not None else "    "
        line = f"[{time.monotonic() - started:6.1f}s] {pct} {message}"
        print(f"\033[2m{line}\033[0m" if tty and message.startswith(("resolving:", "downloading")) else line, file=sys.stderr)

    return progress


def cmd_install(args: argparse.Namespace) -> int:
    from localai.install.backends import InstallError, InvalidName, install
    from localai.install.backends.gallery import GalleryError

    started = time.monotonic()
    try:
        meta = install(args.spec, backends_path=args.backends_path, name=args.name, aliases=args.alias or (),
                       force=args.force, progress=_printer(started), galleries=args.backend_galleries)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was installed", file=sys.stderr)
        return 130
    except (InstallError, InvalidName, GalleryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"nothing was installed ({time.monotonic() - started:.1f} s)", file=sys.stderr)
        return 1
    names = ", ".join(b["name"] for b in meta["backends"])
    print(f"installed {meta['name']} ({meta.get('distribution')} {meta.get('version') or ''}, backends: {names}) "
          f"in {time.monotonic() - started:.1f} s\n  environment: {meta['path']}")
    if meta["backends"] and meta["backends"][0].get("unavailable"):
        print(f"  warning: it cannot run on this machine: {meta['backends'][0]['unavailable']}")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from localai.install.backends import InstallError, InvalidName, store, uninstall
    from localai.install.backends.registration import models_using, names_of

    try:
        meta = store.find(args.backends_path, args.name)
        if meta is None:
            raise InstallError(f"backend {args.name!r} is not installed in {Path(args.backends_path).resolve()}")
        used = models_using(args.models_path, names_of(meta))
        if used:
            print(f"warning: model(s) {', '.join(used)} in {args.models_path} use backend {meta['name']}; "
                  f"they will not load until it is installed again", file=sys.stderr)
        uninstall(meta["name"], backends_path=args.backends_path)
    except (InstallError, InvalidName) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"uninstalled {meta['name']} ({meta['path']})")
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    from localai.install.backends import InstallError, InvalidName, upgrade
    from localai.install.backends.gallery import GalleryError

    started = time.monotonic()
    try:
        metas = upgrade(args.names, backends_path=args.backends_path, progress=_printer(started),
                        galleries=args.backend_galleries)
    except KeyboardInterrupt:
        print("\ninterrupted: the installed environments are unchanged", file=sys.stderr)
        return 130
    except (InstallError, InvalidName, GalleryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not metas:
        print("no backend environments installed")
    for meta in metas:
        print(f"upgraded {meta['name']} to {meta.get('distribution')} {meta.get('version') or ''}")
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0


def print_gallery(args: argparse.Namespace, registry: Any) -> None:
    from localai.install.backends import available
    from localai.install.backends.gallery import GalleryError

    system = [n for n, b in registry.backends.items() if b.environment is None]
    try:
        entries = available(args.backends_path, args.backend_galleries, system_backends=system)
    except GalleryError as exc:
        print(f"error: {exc}")
        return
    rows = [("GALLERY", "STATUS", "DESCRIPTION")]
    for e in entries:
        if e.get("system"):
            status = "installed in the server's environment"
        elif e.get("installed"):
            status = f"installed as {e['installed_name']}" + (" (upgradable)" if e.get("upgradable") else "")
        elif e["meta"]:
            status = "not installed (meta: " + ", ".join(f"{k}->{v}" for k, v in e["capabilities"].items()) + ")"
        else:
            status = "not installed"
        rows.append((e["id"], status, e.get("description", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    print()
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}")


def show_environment(backend: Any) -> None:
    if not backend.environment:
        return
    from localai.install.backends import store

    meta = store.read(Path(backend.environment))
    print(f"  environment:  {meta['path']}")
    print(f"  interpreter:  {meta['interpreter']}")
    print(f"  installed:    {meta.get('installed_at', '?')} from {meta.get('uri', '?')}")
