"""The ``localai`` command line. Heavy modules load only inside the subcommand that needs them."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    from localai.media import ImageSettings
    from localai.runtime.lifecycle import LifecycleSettings

ENV_PREFIX = "LOCALAI_"


@overload
def env(name: str) -> str | None: ...
@overload
def env(name: str, default: str) -> str: ...
def env(name: str, default: str | None = None) -> str | None:
    """``LOCALAI_<NAME>`` from the environment, else ``default``."""
    return os.environ.get(ENV_PREFIX + name, default)


def show_help(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A command group run without a subcommand: its help, exit status 2."""
    def run(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2
    return run


def env_flag(name: str) -> bool:
    return (env(name) or "").strip().lower() in ("1", "true", "yes", "on")


def duration(text: str) -> float:
    from localai.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_lifecycle_flags(run: argparse.ArgumentParser) -> None:
    """LocalAI's model lifecycle flags (watchdogs, active-model limit, preload) plus shutdown and body limits."""
    g = run.add_argument_group("model lifecycle", "when models load and unload (see README: Model lifecycle)")
    g.add_argument("--enable-watchdog-idle", action="store_true", default=env_flag("WATCHDOG_IDLE"),
                   help="unload a model after --watchdog-idle-timeout without requests (env LOCALAI_WATCHDOG_IDLE); "
                        "a model's YAML keep_alive overrides it either way")
    g.add_argument("--watchdog-idle-timeout", type=duration, default=duration(env("WATCHDOG_IDLE_TIMEOUT", "15m")),
                   help="idle time before unloading, e.g. 90s, 15m, 1h (env LOCALAI_WATCHDOG_IDLE_TIMEOUT; default 15m)")
    g.add_argument("--enable-watchdog-busy", action="store_true", default=env_flag("WATCHDOG_BUSY"),
                   help="kill a model's worker when a request on it runs longer than --watchdog-busy-timeout; its requests "
                        "fail with 504 and the next request reloads the model (env LOCALAI_WATCHDOG_BUSY)")
    g.add_argument("--watchdog-busy-timeout", type=duration, default=duration(env("WATCHDOG_BUSY_TIMEOUT", "5m")),
                   help="longest a request may run before the busy watchdog acts (env LOCALAI_WATCHDOG_BUSY_TIMEOUT; default 5m)")
    g.add_argument("--max-active-backends", type=int, default=int(env("MAX_ACTIVE_BACKENDS", "0") or 0),
                   help="most models loaded at once; loading one more unloads the least recently used idle model "
                        "(pinned: true models are never unloaded) (env LOCALAI_MAX_ACTIVE_BACKENDS; default 0 = no limit)")
    g.add_argument("--single-active-backend", action="store_true", default=env_flag("SINGLE_ACTIVE_BACKEND"),
                   help="same as --max-active-backends 1 (env LOCALAI_SINGLE_ACTIVE_BACKEND)")
    g.add_argument("--max-active-wait", type=duration, default=duration(env("MAX_ACTIVE_WAIT", "30s")),
                   help="how long a load waits for a busy model to become idle before answering 503 server busy "
                        "(529 on the Anthropic API) (env LOCALAI_MAX_ACTIVE_WAIT; default 30s)")
    g.add_argument("--disable-memory-check", action="store_true", default=env_flag("DISABLE_MEMORY_CHECK"),
                   help="load models even when their estimated size (model files + context) exceeds available RAM; by "
                        "default idle models are unloaded to make room and the load is refused if it still cannot fit "
                        "(env LOCALAI_DISABLE_MEMORY_CHECK)")
    g.add_argument("--preload-models", default=env("PRELOAD_MODELS", ""),
                   help="comma-separated models to load at start-up (besides YAML preload: true); /readyz answers 200 "
                        "only once they are loaded (env LOCALAI_PRELOAD_MODELS)")
    g.add_argument("--shutdown-timeout", type=duration, default=duration(env("SHUTDOWN_TIMEOUT", "30s")),
                   help="on SIGTERM, how long requests in flight may still run (new ones get 503); then streams end with "
                        "an error event and workers stop (env LOCALAI_SHUTDOWN_TIMEOUT; default 30s)")
    g.add_argument("--upload-limit", type=float, default=float(env("UPLOAD_LIMIT", "15") or 15),
                   help="largest request body in MiB; bigger ones get 413 (env LOCALAI_UPLOAD_LIMIT; default 15, 0 = no limit)")


def add_image_flags(run: argparse.ArgumentParser) -> None:
    """Limits on the images clients send in chat messages (see docs/vision.md)."""
    g = run.add_argument_group("images in requests", "limits on images sent to vision models (see docs/vision.md)")
    g.add_argument("--image-max-size", type=float, default=float(env("IMAGE_MAX_SIZE", "20") or 20),
                   help="largest image in MiB, decoded or fetched (env LOCALAI_IMAGE_MAX_SIZE; default 20)")
    g.add_argument("--image-max-pixels", type=int, default=int(env("IMAGE_MAX_PIXELS", "40000000") or 40_000_000),
                   help="largest image in pixels, width x height, checked before decoding "
                        "(env LOCALAI_IMAGE_MAX_PIXELS; default 40000000)")
    g.add_argument("--image-max-count", type=int, default=int(env("IMAGE_MAX_COUNT", "16") or 16),
                   help="most images in one request, unless the model takes fewer (env LOCALAI_IMAGE_MAX_COUNT; default 16)")
    g.add_argument("--image-fetch-timeout", type=duration, default=duration(env("IMAGE_FETCH_TIMEOUT", "10s")),
                   help="longest fetch of an image URL, redirects included (env LOCALAI_IMAGE_FETCH_TIMEOUT; default 10s)")
    g.add_argument("--allow-private-urls", action="store_true", default=env_flag("ALLOW_PRIVATE_URLS"),
                   help="fetch image URLs whose host is on loopback, link-local or a private network; off by default so "
                        "clients cannot make the server reach internal services (env LOCALAI_ALLOW_PRIVATE_URLS)")


def image_settings(args: argparse.Namespace) -> ImageSettings:
    from localai.media import ImageSettings

    return ImageSettings(max_bytes=int(max(0.0, args.image_max_size) * 2**20), max_pixels=max(1, args.image_max_pixels),
                         max_images=max(0, args.image_max_count), fetch_timeout=max(0.1, args.image_fetch_timeout),
                         allow_private=args.allow_private_urls)


def lifecycle_settings(args: argparse.Namespace) -> LifecycleSettings:
    from localai.runtime.lifecycle import LifecycleSettings

    max_active = 1 if args.single_active_backend else max(0, args.max_active_backends)
    return LifecycleSettings(
        idle_timeout=args.watchdog_idle_timeout if args.enable_watchdog_idle else None,
        busy_timeout=args.watchdog_busy_timeout if args.enable_watchdog_busy else None,
        max_active=max_active,
        eviction_wait=max(0.0, args.max_active_wait),
        memory_check=not args.disable_memory_check,
        preload=[m.strip() for m in (args.preload_models or "").split(",") if m.strip()],
    )


def parse_address(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``[v6]:port``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"address {address!r} must be HOST:PORT, e.g. 127.0.0.1:8080")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))  # one line per request is noise


def add_models_path(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-path", type=Path, default=Path(env("MODELS_PATH", "models")),
                   help="folder holding model YAML files and model files (env LOCALAI_MODELS_PATH; default ./models)")


def backends_path_default() -> Path:
    return Path(env("BACKENDS_PATH") or Path(env("DATA_PATH", "data")) / "backends")


def add_backend_args(p: argparse.ArgumentParser, suppress: bool = False) -> None:
    """``--backends-path`` and ``--backend-galleries``; ``suppress`` on subcommands so the parent's value stands."""
    p.add_argument("--backends-path", type=Path, default=argparse.SUPPRESS if suppress else backends_path_default(),
                   help="folder of installed backend environments (env LOCALAI_BACKENDS_PATH; default <data path>/backends)")
    p.add_argument("--backend-galleries", default=argparse.SUPPRESS if suppress else env("BACKEND_GALLERIES"),
                   help="extra backend gallery indexes, comma-separated paths or URLs, or LocalAI's JSON "
                        "[{\"name\",\"url\"}] (env LOCALAI_BACKEND_GALLERIES)")


def _concurrency_env() -> int:
    value = env("ARTIFACT_DOWNLOAD_CONCURRENCY", "4") or "4"
    return int(value) if value.isdigit() and int(value) > 0 else 4


def add_gallery_flags(p: argparse.ArgumentParser, sub: bool = False) -> None:
    from localai.install.models import DEFAULT_GALLERIES

    default = argparse.SUPPRESS if sub else env("GALLERIES", DEFAULT_GALLERIES)
    p.add_argument("--galleries", default=default,
                   help="model galleries as LocalAI's JSON list [{\"name\": ..., \"url\": ...}]; url may be https://, http://, "
                        "file://, a local path or github:owner/repo/path@branch (env LOCALAI_GALLERIES; default: LocalAI's gallery)")
    p.add_argument("--artifact-download-concurrency", type=int, dest="download_concurrency",
                   default=argparse.SUPPRESS if sub else _concurrency_env(),
                   help="how many files of a model to download at once (env LOCALAI_ARTIFACT_DOWNLOAD_CONCURRENCY; default 4)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localai",
        description="A plugin-based local AI inference server speaking the OpenAI, Anthropic and Open Responses APIs. "
                    "Models are LocalAI-style YAML files in a models folder; each is served by a backend plugin "
                    "installed as its own package (e.g. localai-llama-cpp).",
        epilog="Environment variables use the LOCALAI_ prefix: LOCALAI_ADDRESS, LOCALAI_MODELS_PATH, LOCALAI_DATA_PATH, "
               "LOCALAI_API_KEY, LOCALAI_LOG_LEVEL, LOCALAI_PLUGINS, LOCALAI_BACKENDS_PATH, LOCALAI_BACKEND_GALLERIES, "
               "LOCALAI_FORCE_META_BACKEND_CAPABILITY, LOCALAI_GALLERIES, LOCALAI_ARTIFACT_DOWNLOAD_CONCURRENCY; "
               "`localai run --help` lists the lifecycle ones.",
    )
    parser.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"), help="DEBUG, INFO, WARNING or ERROR (env LOCALAI_LOG_LEVEL)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="serve the models folder over HTTP",
                         description="Start the HTTP server. Each model loads in its own worker process on first use.")
    run.add_argument("--address", default=env("ADDRESS", "127.0.0.1:8080"),
                     help="HOST:PORT to listen on (env LOCALAI_ADDRESS; default 127.0.0.1:8080)")
    add_models_path(run)
    run.add_argument("--data-path", type=Path, default=Path(env("DATA_PATH", "data")),
                     help="folder for stored state such as stored responses (env LOCALAI_DATA_PATH; default ./data)")
    run.add_argument("--database-url", default=env("DATABASE_URL"),
                     help="where stored responses and install jobs live: postgresql://USER:PASSWORD@HOST:PORT/DB for replicas "
                          "sharing state (needs localai-core[postgres]), or sqlite:///PATH (env LOCALAI_DATABASE_URL; default "
                          "SQLite in DATA_PATH)")
    run.add_argument("--generated-content-path", type=Path, default=env("GENERATED_CONTENT_PATH"),
                     help="folder for generated images served at /generated-images/ "
                          "(env LOCALAI_GENERATED_CONTENT_PATH; default DATA_PATH/generated/images)")
    run.add_argument("--generated-content-max-age", default=env("GENERATED_CONTENT_MAX_AGE", "24h"),
                     help="delete generated images older than this: seconds or 30m, 24h, 7d; 0 keeps them "
                          "(env LOCALAI_GENERATED_CONTENT_MAX_AGE; default 24h)")
    run.add_argument("--generated-content-max-files", type=int, default=int(env("GENERATED_CONTENT_MAX_FILES", "1000") or 0),
                     help="keep at most this many generated images, deleting the oldest; 0: no limit "
                          "(env LOCALAI_GENERATED_CONTENT_MAX_FILES; default 1000)")
    run.add_argument("--api-key", action="append", default=None,
                     help="require this API key (repeatable; env LOCALAI_API_KEY, comma-separated)")
    add_backend_args(run)
    add_lifecycle_flags(run)
    add_image_flags(run)
    add_gallery_flags(run)
    run.add_argument("models", nargs="*", metavar="MODEL",
                     help="gallery models (NAME or GALLERY@NAME) or model config URLs to install before serving, "
                          "unless the models folder already has them")
    run.set_defaults(func=cmd_run)

    backends = sub.add_parser("backends", help="list, install, upgrade and uninstall backends",
                              description="Without a subcommand: list backends (plugins in this environment and backend "
                                          "environments), whether each can run here (or why not), and what the backend "
                                          "gallery offers. Each installed backend lives in its own virtual environment.")
    add_backend_args(backends)
    bsub = backends.add_subparsers(dest="backends_command", metavar="SUBCOMMAND")
    blist = bsub.add_parser("list", help="installed backends and the gallery (installed / not / upgradable)")
    add_backend_args(blist, suppress=True)
    blist.set_defaults(func=cmd_backends)
    install = bsub.add_parser("install", help="install a backend into its own virtual environment",
                              description="Install a backend from the backend gallery (by name or alias; meta backends pick "
                                          "the build for this machine's accelerator, LOCALAI_FORCE_META_BACKEND_CAPABILITY "
                                          "overrides), from a local plugin folder (./plugins/vllm) or a pip requirement "
                                          "(localai-foo==1.2, pip:NAME). pip uses the machine's configuration. A failed or "
                                          "interrupted install leaves nothing behind.")
    install.add_argument("spec", metavar="NAME|PATH|REQUIREMENT", help="gallery name, plugin folder or pip requirement")
    install.add_argument("--name", help="install under this name (models then say backend: NAME)")
    install.add_argument("--alias", action="append", help="another name models may use (repeatable)")
    install.add_argument("--force", action="store_true", help="replace an installed backend of the same name")
    add_backend_args(install, suppress=True)
    install.set_defaults(func=cmd_backends_install)
    uninstall = bsub.add_parser("uninstall", help="remove an installed backend environment",
                                description="Remove a backend environment; warns which models in the models folder use it.")
    uninstall.add_argument("name", help="installed backend name or alias")
    add_models_path(uninstall)
    add_backend_args(uninstall, suppress=True)
    uninstall.set_defaults(func=cmd_backends_uninstall)
    upgrade = bsub.add_parser("upgrade", help="reinstall backends from their source in fresh environments",
                              description="Rebuild each named backend (all when none is named) from what it was installed "
                                          "from; the old environment stays in place until the new one works.")
    upgrade.add_argument("names", nargs="*", metavar="NAME", help="installed backend names (default: all)")
    add_backend_args(upgrade, suppress=True)
    upgrade.set_defaults(func=cmd_backends_upgrade)
    show = bsub.add_parser("show", help="details and options of one backend")
    show.add_argument("name", help="backend name or alias")
    add_backend_args(show, suppress=True)
    show.set_defaults(func=cmd_backends_show)
    backends.set_defaults(func=cmd_backends)

    models = sub.add_parser("models", help="list configured models; list and install gallery models",
                            description="Without a subcommand: load the models folder as the server would and list each "
                                        "model's backend, file and problems. 'list' and 'install' use the model galleries.")
    add_models_path(models)
    add_backend_args(models)
    models.set_defaults(func=cmd_models)
    msub = models.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    mlist = msub.add_parser("list", help="models available in the galleries (marked when installed) and installed models")
    mlist.add_argument("--models-path", type=Path, default=argparse.SUPPRESS, help="as for 'localai models'")
    add_gallery_flags(mlist, sub=True)
    mlist.add_argument("--gallery", default=None, help="only this gallery (by name)")
    mlist.set_defaults(func=cmd_models_list)
    minst = msub.add_parser("install", help="install gallery models by name, with a progress bar per file",
                            description="Download each model's files (resumed, sha256-verified) into the models folder "
                                        "and write its YAML. NAME is a gallery model's name, GALLERY@NAME, or the URL of "
                                        "a model config.")
    minst.add_argument("names", nargs="+", metavar="NAME")
    minst.add_argument("--gallery", default=None, help="look NAME up in this gallery only")
    minst.add_argument("--models-path", type=Path, default=argparse.SUPPRESS, help="as for 'localai models'")
    add_gallery_flags(minst, sub=True)
    minst.set_defaults(func=cmd_models_install)
    for p in (models, mlist, minst):
        p.set_defaults(galleries=env("GALLERIES"), download_concurrency=_concurrency_env())

    worker = sub.add_parser("worker", help="run a helper process other machines' models use (e.g. llama.cpp RPC)",
                            description="Start a worker that serves compute to models on other localai servers.")
    wsub = worker.add_subparsers(dest="worker_kind", metavar="KIND")
    rpc = wsub.add_parser("llama-cpp-rpc", help="llama.cpp RPC server (ggml's RPC backend) for grpc_servers / rpc_servers",
                          description="Serve this machine's CPU to llama.cpp models that list HOST:PORT in their "
                                      "grpc_servers option. The protocol is unauthenticated: use a trusted network.")
    rpc.add_argument("--address", type=parse_address, default=env("RPC_ADDRESS", "127.0.0.1:50052"),
                     help="HOST:PORT to listen on (env LOCALAI_RPC_ADDRESS; default 127.0.0.1:50052)")
    rpc.add_argument("--threads", type=int, default=None, help="CPU threads for the computation (default: all cores)")
    rpc.add_argument("--cache-dir", default=None, help="folder where the worker caches tensors it was sent (optional)")
    rpc.set_defaults(func=cmd_worker_llama_cpp_rpc)
    worker.set_defaults(func=show_help(worker))

    plugin = sub.add_parser("plugin", help="tools for backend plugin authors",
                            description="Tools for writing backend plugins (see the README's 'Writing a backend plugin').")
    psub = plugin.add_subparsers(dest="plugin_command", metavar="SUBCOMMAND")
    new = psub.add_parser("new", help="write a new backend plugin package from the template",
                          description="Write a pip-installable backend plugin: pyproject.toml with the localai.backends "
                                      "entry point and a test extra, the hooks module, an options table, a model class "
                                      "following localai.protocol.Model around marked TODO(engine) calls, the "
                                      "conformance test and a README.")
    new.add_argument("name", help="backend name, e.g. my-engine (distribution localai-my-engine, package localai_my_engine)")
    new.add_argument("--dir", type=Path, default=None, help="folder to create (default ./NAME); must not exist or be empty")
    new.set_defaults(func=cmd_plugin_new)
    plugin.set_defaults(func=show_help(plugin))

    return parser


def cmd_plugin_new(args: argparse.Namespace) -> int:
    from localai.plugin_template import new_plugin

    try:
        dest, written = new_plugin(args.name, args.dir)
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    model = next(p for p in written if p.name == "model.py")
    print(f"next: write the TODO(engine) functions in {model}, then: pip install -e '{dest}[test]' && pytest {dest}/tests\n"
          f"install it for the server with: localai backends install {dest} (or pip install {dest})")
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    from localai.bootstrap import bootstrap

    setup = bootstrap(backends_path=args.backends_path)
    pm, registry = setup.pm, setup.registry
    rows = [("BACKEND", "ALIASES", "DISTRIBUTION", "STATUS")]
    for b in sorted(registry.backends.values(), key=lambda b: b.name):
        dist = f"{b.distribution or b.plugin} {b.version or ''}".strip()
        if b.environment:
            dist += f" [environment {Path(b.environment).name}]"
        status = "available" if b.unavailable is None else f"unavailable: {b.unavailable}"
        rows.append((b.name, ", ".join(b.aliases) or "-", dist, status))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
    broken = [i for i in pm.infos.values() if i.error]
    for info in broken:
        print(f"plugin {info.name} ({info.distribution or 'in-process'}) is broken: {info.error}")
    for err in registry.errors:
        print(f"error: {err}")
    from localai.registry.backends import KNOWN_BACKENDS

    missing = [f"{name} (localai backends install {name})" for name in KNOWN_BACKENDS if name not in registry.backends]
    if missing:
        print("not installed: " + ", ".join(missing))
    from localai.cli.backends import print_gallery

    print_gallery(args, registry)
    return 1 if registry.errors else 0


def cmd_backends_install(args: argparse.Namespace) -> int:
    from localai.cli.backends import cmd_install

    return cmd_install(args)


def cmd_backends_uninstall(args: argparse.Namespace) -> int:
    from localai.cli.backends import cmd_uninstall

    return cmd_uninstall(args)


def cmd_backends_upgrade(args: argparse.Namespace) -> int:
    from localai.cli.backends import cmd_upgrade

    return cmd_upgrade(args)


def cmd_backends_show(args: argparse.Namespace) -> int:
    from localai.bootstrap import bootstrap
    from localai.registry.backends import BackendError

    registry = bootstrap(backends_path=args.backends_path).registry
    try:
        b = registry.resolve(args.name)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{b.name}: {b.description}")
    print(f"  aliases:      {', '.join(b.aliases) or '-'}")
    print(f"  distribution: {b.distribution or b.plugin} {b.version or ''}")
    print(f"  capabilities: {', '.join(b.capabilities) or '-'}")
    print(f"  formats:      {', '.join(b.formats) or '-'}")
    print(f"  status:       {'available' if b.unavailable is None else 'unavailable: ' + b.unavailable}")
    from localai.cli.backends import show_environment

    show_environment(b)
    if b.options:
        print("  options:")
        for o in b.options:
            names = ", ".join((o.name, *o.aliases))
            default = "" if o.default is None else f" (default {o.default})"
            env_note = f" [env {o.env}]" if o.env else ""
            support = "" if o.supported is None else f" -- not supported here: {o.supported}"
            print(f"    {names}: {o.type}{default}{env_note} - {o.help}{support}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from localai.bootstrap import bootstrap

    catalog = bootstrap(args.models_path, args.backends_path).models
    rows = [("MODEL", "BACKEND", "FILE", "STATUS")]
    for e in catalog.entries.values():
        model_file = e.config.parameters.model or "-"
        rows.append((e.name, e.backend.name if e.backend else "-", f"{model_file} ({e.file})",
                     "ok" if e.usable else "problem: " + "; ".join(e.problems)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
    for p in catalog.problems:
        print(f"problem: {p}")
    return 1 if catalog.problems or any(not e.usable for e in catalog.entries.values()) else 0


def _galleries_arg(args: argparse.Namespace) -> str:
    from localai.install.models import DEFAULT_GALLERIES

    return DEFAULT_GALLERIES if args.galleries is None else args.galleries


def cmd_models_list(args: argparse.Namespace) -> int:
    from localai.cli import models as gallery_cli

    return gallery_cli.cmd_list(args.models_path, _galleries_arg(args), args.gallery)


def cmd_models_install(args: argparse.Namespace) -> int:
    from localai.cli import models as gallery_cli

    return gallery_cli.cmd_install(args.models_path, _galleries_arg(args), args.names, args.gallery, args.download_concurrency)


def cmd_worker_llama_cpp_rpc(args: argparse.Namespace) -> int:
    try:
        from localai_llama_cpp.rpc import serve  # the plugin, imported only for this subcommand
    except ImportError:
        print("error: the llama-cpp backend is not installed: pip install localai-llama-cpp", file=sys.stderr)
        return 1
    host, port = args.address
    return serve(host, port, threads=args.threads, cache_dir=args.cache_dir)


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    from localai.cli import models as gallery_cli
    from localai.install.models.index import GalleryError, parse_galleries
    from localai.server.app import Settings, create_app

    keys = args.api_key or [k.strip() for k in (env("API_KEY") or "").split(",") if k.strip()]
    host, port = parse_address(args.address)
    from localai.install.backends.gallery import parse_sources
    from localai.server.shutdown import GracefulServer

    try:
        model_galleries = [g.model_dump() for g in parse_galleries(args.galleries)]
    except GalleryError as exc:
        print(f"error: --galleries: {exc}", file=sys.stderr)
        return 2
    if args.models and gallery_cli.install_for_run(args.models_path, args.galleries, args.models, args.download_concurrency):
        return 1
    from localai.state import Database

    try:  # a database that cannot be used stops the start here, in a sentence, before anything listens
        Database(args.database_url or None, args.data_path).prepare()
    except Exception as exc:  # noqa: BLE001 - ValueError (the URL), StoreUnavailable, RuntimeError (driver, file)
        print(f"error: --database-url: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 1
    from localai.durations import parse_duration

    try:
        max_age = parse_duration(args.generated_content_max_age)
    except ValueError as exc:
        print(f"error: --generated-content-max-age: {exc}", file=sys.stderr)
        return 2
    galleries = [url for _, url in parse_sources(args.backend_galleries)]
    backends_path = args.backends_path if env("BACKENDS_PATH") or args.backends_path != backends_path_default() \
        else args.data_path / "backends"  # default: under the --data-path given
    settings = Settings(models_path=args.models_path, data_path=args.data_path, api_keys=keys,
                        backends_path=backends_path, backend_galleries=galleries,
                        lifecycle=lifecycle_settings(args), upload_limit=int(max(0.0, args.upload_limit) * 2**20),
                        shutdown_timeout=max(0.0, args.shutdown_timeout),
                        galleries=model_galleries, download_concurrency=args.download_concurrency,
                        generated_content_path=Path(args.generated_content_path) if args.generated_content_path else None,
                        generated_max_age=max_age, generated_max_files=args.generated_content_max_files,
                        images=image_settings(args), database_url=args.database_url or None)
    logging.getLogger("localai").info("models folder %s, listening on http://%s:%d%s", args.models_path.resolve(), host, port,
                                      " (API key required)" if keys else "")
    app = create_app(settings)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=5)
    GracefulServer(config, app.state.localai, settings.shutdown_timeout).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.log_level)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
