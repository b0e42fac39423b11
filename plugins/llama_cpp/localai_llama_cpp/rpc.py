"""``localai worker llama-cpp-rpc``: ggml's RPC server from the same llama.cpp build, serving this CPU.

Models list such workers in ``grpc_servers`` (``rpc_servers``); llama.cpp then places layers on them.
The protocol has no authentication: listen on a trusted network only.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

log = logging.getLogger("localai_llama_cpp.rpc")


def serve(host: str, port: int, threads: int | None = None, cache_dir: str | None = None) -> int:
    """Run the RPC server in the foreground until killed; returns an exit status if it cannot start."""
    from localai_llama_cpp import ggml

    endpoint = f"{host}:{port}"  # ggml splits at the first colon: no IPv6 literals
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the llama.cpp RPC protocol is unauthenticated: anyone reaching %s can run work on this machine", endpoint)
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
    n_threads = threads or os.cpu_count() or 1
    # The server loop is C code: let SIGINT/SIGTERM end the process directly instead of waiting on Python.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    log.info("llama.cpp RPC worker on %s (%d threads, ggml from %s)", endpoint, n_threads, ggml.lib_dir())
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        ggml.start_rpc_server(endpoint, cache_dir, n_threads)
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    log.error("the RPC server on %s stopped (is the address in use or invalid?)", endpoint)
    return 1
