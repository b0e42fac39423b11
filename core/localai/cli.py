"""The ``localai`` command line. Heavy modules load only inside the subcommand that needs them."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

ENV_PREFIX = "LOCALAI_"


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``[v6]:port``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"address {address!r} must be HOST:PORT, e.g. 127.0.0.1:8080")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def add_models_path(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-path", type=Path, default=Path(env("MODELS_PATH", "models")),
                   help="folder holding model YAML files and model files (env LOCALAI_MODELS_PATH; default ./models)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localai",
        description="A plugin-based local AI inference server speaking the OpenAI, Anthropic and Open Responses APIs. "
                    "Models are LocalAI-style YAML files in a models folder; each is served by a backend plugin "
                    "installed as its own package (e.g. localai-llama-cpp).",
        epilog="Environment variables use the LOCALAI_ prefix: LOCALAI_ADDRESS, LOCALAI_MODELS_PATH, LOCALAI_DATA_PATH, "
               "LOCALAI_API_KEY, LOCALAI_LOG_LEVEL, LOCALAI_PLUGINS.",
    )
    parser.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"), help="DEBUG, INFO, WARNING or ERROR (env LOCALAI_LOG_LEVEL)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="serve the models folder over HTTP",
                         description="Start the HTTP server. Each model loads in its own worker process on first use.")
    run.add_argument("--address", default=env("ADDRESS", "127.0.0.1:8080"), help="HOST:PORT to listen on (env LOCALAI_ADDRESS; default 127.0.0.1:8080)")
    add_models_path(run)
    run.add_argument("--data-path", type=Path, default=Path(env("DATA_PATH", "data")),
                     help="folder for stored state such as stored responses (env LOCALAI_DATA_PATH; default ./data)")
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
    run.set_defaults(func=cmd_run)

    backends = sub.add_parser("backends", help="list installed backends and whether each can run here",
                              description="List backends from installed plugins: name, aliases, distribution and version, "
                                          "and whether the engine can run on this machine (or why not).")
    bsub = backends.add_subparsers(dest="backends_command", metavar="SUBCOMMAND")
    show = bsub.add_parser("show", help="details and options of one backend")
    show.add_argument("name", help="backend name or alias")
    show.set_defaults(func=cmd_backends_show)
    backends.set_defaults(func=cmd_backends)

    models = sub.add_parser("models", help="list configured models and their problems",
                            description="Load the models folder as the server would and list each model's backend, file and problems.")
    add_models_path(models)
    models.set_defaults(func=cmd_models)

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
    worker.set_defaults(func=lambda args: (worker.print_help(), 2)[1])

    return parser


def _state(models_path: Path):  # type: ignore[no-untyped-def]
    from localai.backends import Registry
    from localai.catalog import Catalog
    from localai.plugins import make_plugin_manager

    pm = make_plugin_manager()
    registry = Registry(pm)
    return pm, registry, Catalog(models_path, registry).load() if models_path else None


def cmd_backends(args: argparse.Namespace) -> int:
    pm, registry, _ = _state(None)  # type: ignore[arg-type]
    rows = [("BACKEND", "ALIASES", "DISTRIBUTION", "STATUS")]
    for b in sorted(registry.backends.values(), key=lambda b: b.name):
        dist = f"{b.distribution or b.plugin} {b.version or ''}".strip()
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
    from localai.backends import KNOWN_BACKENDS

    missing = [f"{name} (pip install {dist})" for name, (dist, _) in KNOWN_BACKENDS.items() if name not in registry.backends]
    if missing:
        print("not installed: " + ", ".join(missing))
    return 1 if registry.errors else 0


def cmd_backends_show(args: argparse.Namespace) -> int:
    from localai.backends import BackendError

    _, registry, _ = _state(None)  # type: ignore[arg-type]
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
    _, _, catalog = _state(args.models_path)
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

    from localai.app import Settings, create_app

    keys = args.api_key or [k.strip() for k in (env("API_KEY") or "").split(",") if k.strip()]
    host, port = parse_address(args.address)
    from localai.generated import parse_duration

    try:
        max_age = parse_duration(args.generated_content_max_age)
    except ValueError as exc:
        print(f"error: --generated-content-max-age: {exc}", file=sys.stderr)
        return 2
    settings = Settings(models_path=args.models_path, data_path=args.data_path, api_keys=keys,
                        generated_content_path=Path(args.generated_content_path) if args.generated_content_path else None,
                        generated_max_age=max_age, generated_max_files=args.generated_content_max_files)
    logging.getLogger("localai").info("models folder %s, listening on http://%s:%d%s", args.models_path.resolve(), host, port,
                                      " (API key required)" if keys else "")
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=5)
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
