"""ctypes access to the ggml libraries of the llama.cpp build llama-cpp-python loaded (worker side only).

llama-cpp-python does not wrap ggml's backend registry, RPC backend or type names; these helpers reach
them in the same shared libraries (the folder ``LLAMA_CPP_LIB_PATH`` names, else the wheel's ``lib/``),
so the process keeps one ggml instance.
"""

from __future__ import annotations

import ctypes
import functools
import os
import socket
import string
import sys
from pathlib import Path

# ggml_type ids are append-only in ggml.h, so the standard cache types have the same id in every fork.
STANDARD_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "iq4_nl": 20, "bf16": 30}
DEVICE_TYPE_CPU = 0
PRINTABLE = set(string.ascii_letters + string.digits + "_")


def lib_dir() -> Path:
    """The folder holding libllama / libggml* for this process."""
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    if override:
        return Path(override)
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llama-cpp-python is not installed")
    return Path(next(iter(spec.submodule_search_locations)), "lib")


@functools.cache
def library(name: str) -> ctypes.CDLL:
    """``libNAME.so`` from :func:`lib_dir`, loaded once (the dynamic loader shares it with llama_cpp's)."""
    folder = lib_dir()
    for candidate in (folder / f"lib{name}.so", folder / f"lib{name}.dylib", folder / f"{name}.dll"):
        if candidate.exists():
            return ctypes.CDLL(str(candidate), mode=ctypes.RTLD_GLOBAL)
    raise RuntimeError(f"lib{name} is not in {folder}")


def has_symbol(lib: str, symbol: str) -> bool:
    try:
        return hasattr(library(lib), symbol)
    except RuntimeError:
        return False


def _readable_ranges(path: str) -> list[tuple[int, int]]:
    """Address ranges of ``path``'s readable mappings in this process (Linux)."""
    ranges = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split()
                if len(parts) >= 6 and parts[-1] == path and parts[1].startswith("r"):
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    ranges.append((lo, hi))
    except OSError:
        pass
    return ranges


def find_type(name: str, limit: int = 128) -> int | None:
    """The ggml_type id whose ggml_type_name is ``name`` (or ``name_0``), for fork-only types.

    ggml_type_name does not bound-check its argument, so the scan stops at the first entry whose name
    pointer is not a short identifier inside libggml-base's own mappings (the end of the type table).
    """
    base = library("ggml-base")
    fn = base.ggml_type_name
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_void_p
    ranges = _readable_ranges(os.path.realpath(base._name))
    if not ranges:
        return None  # cannot check pointers: do not risk reading past the table
    stem = name.removesuffix("_0")
    wanted = {stem, f"{stem}_0"}
    for i in range(limit):
        ptr = fn(i)
        if not ptr or not any(lo <= ptr < hi - 64 for lo, hi in ranges):
            return None
        raw = ctypes.string_at(ptr, 64).split(b"\0", 1)[0].decode("ascii", "replace")
        if raw in wanted:
            return i
        if not raw or not set(raw) <= PRINTABLE:
            if "REMOVED" not in raw:  # removed types keep a sentence as their name
                return None
    return None


def type_id(name: str) -> int:
    """The ggml_type for a cache type name: standard ones by their fixed id, others looked up by name."""
    key = name.strip().lower()
    if key in STANDARD_TYPES:
        return STANDARD_TYPES[key]
    found = find_type(key)
    if found is None:
        raise ValueError(f"cache type {name!r} is not known to the llama.cpp library in {lib_dir()}")
    return found


# -- RPC ---------------------------------------------------------------------------------------

def check_reachable(endpoint: str, timeout: float = 3.0) -> None:
    """A clear error for an RPC worker nobody listens on (ggml would abort the process instead)."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise RuntimeError(f"RPC worker {endpoint} is not reachable ({exc}); start it with "
                           f"`localai worker llama-cpp-rpc --address {endpoint}`") from None


_added: set[str] = set()


def add_rpc_servers(endpoints: list[str]) -> None:
    """Register each endpoint's devices with ggml, so llama.cpp offloads layers to them (as ``--rpc``).

    Must run before ``llama_cpp`` is imported: libllama lists the ggml devices once, when it loads.
    """
    if not endpoints or all(e in _added for e in endpoints):
        return
    if "llama_cpp" in sys.modules:
        # libllama takes its device list when it loads: devices registered later are never used.
        raise RuntimeError("RPC workers must be registered before llama_cpp is imported in this process")
    if not has_symbol("ggml-rpc", "ggml_backend_rpc_add_server"):
        raise RuntimeError(f"the llama.cpp build in {lib_dir()} has no RPC backend; rebuild llama-cpp-python with -DGGML_RPC=ON")
    rpc = library("ggml-rpc")
    ggml = library("ggml")
    rpc.ggml_backend_rpc_add_server.argtypes, rpc.ggml_backend_rpc_add_server.restype = [ctypes.c_char_p], ctypes.c_void_p
    ggml.ggml_backend_register.argtypes, ggml.ggml_backend_register.restype = [ctypes.c_void_p], None
    for endpoint in endpoints:
        if endpoint in _added:
            continue
        check_reachable(endpoint)
        reg = rpc.ggml_backend_rpc_add_server(endpoint.encode())
        if not reg:
            raise RuntimeError(f"RPC worker {endpoint} did not answer as a llama.cpp RPC server")
        ggml.ggml_backend_register(reg)
        _added.add(endpoint)


def rpc_device_memory(endpoint: str) -> tuple[int, int]:
    """(free, total) bytes the RPC worker reports for its first device."""
    rpc = library("ggml-rpc")
    fn = rpc.ggml_backend_rpc_get_device_memory
    fn.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)]
    fn.restype = None
    free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
    fn(endpoint.encode(), 0, ctypes.byref(free), ctypes.byref(total))
    return free.value, total.value


def start_rpc_server(endpoint: str, cache_dir: str | None, threads: int) -> None:
    """Serve this machine's CPU as a ggml RPC device on ``endpoint``; returns only if the server fails."""
    if not has_symbol("ggml-rpc", "ggml_backend_rpc_start_server"):
        raise RuntimeError(f"the llama.cpp build in {lib_dir()} has no RPC backend; rebuild llama-cpp-python with -DGGML_RPC=ON")
    ggml = library("ggml")
    rpc = library("ggml-rpc")
    ggml.ggml_backend_dev_by_type.argtypes, ggml.ggml_backend_dev_by_type.restype = [ctypes.c_int], ctypes.c_void_p
    cpu = ggml.ggml_backend_dev_by_type(DEVICE_TYPE_CPU)
    if not cpu:  # builds with dynamically loaded backends register them on demand
        ggml.ggml_backend_load_all.argtypes, ggml.ggml_backend_load_all.restype = [], None
        ggml.ggml_backend_load_all()
        cpu = ggml.ggml_backend_dev_by_type(DEVICE_TYPE_CPU)
    if not cpu:
        raise RuntimeError("this llama.cpp build has no CPU device")
    devices = (ctypes.c_void_p * 1)(cpu)
    fn = rpc.ggml_backend_rpc_start_server
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)]
    fn.restype = None
    fn(endpoint.encode(), cache_dir.encode() if cache_dir else None, threads, 1, devices)
