"""Build llama-cpp-python from source for this CPU, optionally over another llama.cpp tree (a fork).

Standard library only and importable without ``llama_cpp``: ``scripts/llama_cpp_build.sh`` runs this file for its
CMake flags, and ``localai backends install`` runs it (``python -m localai_llama_cpp.build --spec JSON``) in a new
backend environment whose gallery entry has a ``build:`` section, before the engine exists there.

A fork is built with the llama-cpp-python release whose own vendored llama.cpp has the fork's base: its ctypes
bindings then describe the fork's structs. That is checked, not assumed: after the build a C program compiled
against the fork's headers prints every struct's size and field offsets, and they must equal what the bindings'
ctypes classes say, or the build fails (``check_layout``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MARKER = "_localai_build.json"  # written into the llama_cpp package: what this build is, read at load time
# Structs whose bindings are known not to match llama.h and that nothing calls: reported, not fatal.
UNUSED = {"llama_opt_params": "the training API's parameters (llama-cpp-python binds one field fewer); neither "
                              "llama-cpp-python's Llama nor localai calls llama_opt_*"}
# Folders of a llama.cpp source archive that no build reads (tests' vocabularies, docs, the web UI bundle).
NOT_BUILT = ("models", "docs", "examples", "benches", "media", "tools/server/public", ".github", ".devops")


def say(message: str) -> None:
    print(f"[build] {message}", flush=True)


def _cpu_has(*flags: str) -> bool:
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return all(flag in words for flag in flags)


def cmake_flags(extra: Iterable[str] = ()) -> str:
    """The CMake flags for this CPU: SIMD as far as it goes, no ``-march=native`` and AMX off.

    The AMX kernels segfault in decode on this CPU (llama.cpp #20824), and native would turn them back on where
    the CPU has AMX; a machine without AVX-512 gets a build that runs there. ``LLAMA_CPP_CMAKE_ARGS`` replaces it all.
    """
    override = os.environ.get("LLAMA_CPP_CMAKE_ARGS")
    if override:
        return " ".join([override, *extra])
    simd = "-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
    avx512 = _cpu_has("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")
    simd += " -DGGML_AVX512=ON" if avx512 else " -DGGML_AVX512=OFF"
    flags = (f"-DGGML_NATIVE=OFF {simd} -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_RPC=ON "
             "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF")
    return " ".join([flags, *extra])


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "localai"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(folder: Path, skip: Iterable[str] = NOT_BUILT) -> str:
    """A hash of the source files a build reads, whatever archive (and compression) carried them."""
    skipped = tuple(s.rstrip("/") + "/" for s in skip)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(folder).as_posix()
        if (rel + "/").startswith(skipped):  # inside a skipped folder (or a file named like one)
            continue
        digest.update(rel.encode() + b"\0" + bytes.fromhex(file_sha256(path)) + b"\n")
    return digest.hexdigest()


def _download(url: str, dest: Path, offline_hint: str = "") -> None:
    say(f"downloading {url}")
    try:
        _fetch(url, dest)
    except OSError as exc:  # URLError, timeouts, refused connections: say what to do without the network
        reason = getattr(exc, "reason", None) or exc
        raise SystemExit(f"could not download the engine source {url} ({reason})"
                         + (f"; without network access, {offline_hint}" if offline_hint else "")) from None


def _fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:  # noqa: S310 - gallery-pinned URL
        total = int(resp.headers.get("Content-Length") or 0)
        got, shown = 0, -1
        for block in iter(lambda: resp.read(1 << 20), b""):
            out.write(block)
            got += len(block)
            step = int(100 * got / total) // 10 if total else -1
            if step != shown and total:
                shown = step
                say(f"downloaded {got / 1e6:.1f} of {total / 1e6:.1f} MB")


def _extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        try:
            tar.extractall(dest, filter="data")  # no links or paths out of dest
        except TypeError:  # Python without extraction filters: refuse members that would leave dest
            if any(m.name.startswith("/") or ".." in Path(m.name).parts or m.islnk() for m in tar.getmembers()):
                raise SystemExit(f"{archive} has members outside its folder: refusing it") from None
            tar.extractall(dest)  # noqa: S202 - members checked above


def _top_folder(extracted: Path) -> Path:
    entries = [p for p in extracted.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else extracted


def fetch_source(location: str, sha256: str | None, tree: str | None, work: Path,
                 offline_hint: str = "") -> tuple[Path, str]:
    """The engine's source tree from an archive (path or URL) or a folder, and what identifies it for the cache.

    An archive must match the pinned ``sha256``, or, repacked or recompressed, the pinned ``tree`` hash of the
    files the build reads. A folder is a developer's tree: used as it is, unchecked, and keyed by its tree hash.
    """
    if not re.match(r"^[a-z]+://", location) and Path(location).expanduser().is_dir():
        folder = Path(location).expanduser().resolve()
        say(f"using the source folder {folder} as it is (a folder is not checked against the pinned hash)")
        return folder, "tree:" + tree_sha256(folder)
    if re.match(r"^https?://", location):
        archive = work / "source.tar.gz"
        _download(location, archive, offline_hint)
    else:
        archive = Path(location[7:] if location.startswith("file://") else location).expanduser()
        if not archive.is_file():
            raise SystemExit(f"the engine source {location!r} is neither a file, a folder nor an http(s) URL")
    digest = file_sha256(archive)
    extracted = work / "source"
    extracted.mkdir()
    _extract(archive, extracted)
    top = _top_folder(extracted)
    if sha256 and digest == sha256:
        say(f"source archive {archive.name}: sha256 {digest[:16]}... as pinned")
        return top, "sha256:" + digest
    got = tree_sha256(top)
    if tree and got == tree:
        say(f"source archive {archive.name}: its files match the pinned tree hash {tree[:16]}...")
        return top, "sha256:" + (sha256 or got)
    raise SystemExit(f"the engine source {location} does not match the pinned source (archive sha256 {digest}, "
                     f"expected {sha256}; tree {got}, expected {tree}): refusing to build it")


PIP = [sys.executable, "-m", "pip"]  # the installer passes its own (a new environment may have no pip of its own)


def fetch_sdist(requirement: str, sha256: str, work: Path) -> Path:
    """The bindings' source distribution from the configured index, checked by pip against the pinned hash."""
    reqs = work / "bindings.txt"
    reqs.write_text(f"{requirement} --hash=sha256:{sha256}\n")
    dest = work / "sdist"
    say(f"fetching the {requirement} source distribution")
    subprocess.run([*PIP, "download", "--disable-pip-version-check", "--no-deps", "--no-binary",
                    ":all:", "--require-hashes", "-r", str(reqs), "-d", str(dest)], check=True, stdout=sys.stderr)
    found = sorted(dest.glob("*.tar.gz"))
    if not found:
        raise SystemExit(f"pip fetched no source distribution for {requirement}")
    return found[0]


# The bindings' modules and the headers that declare what each binds; a header is looked for in these folders of
# the engine's source (a llama.cpp tree, or an installed package's ``include`` folder).
BOUND = {"llama_cpp": ("llama.h",), "mtmd_cpp": ("mtmd.h", "mtmd-helper.h")}
HEADER_DIRS = ("include", "ggml/include", "tools/mtmd")


def ctypes_layouts(package_dir: Path) -> dict[str, Any]:
    """What the built bindings declare (imported from ``package_dir``): every ctypes Structure's size and field
    offsets, and how many parameters each bound C function is called with."""
    script = r"""
import ctypes, json, os, sys, types, typing
# The bindings modules alone, not the package (whose __init__ needs numpy, diskcache, ... not installed yet).
package = types.ModuleType("llama_cpp")
package.__path__ = [os.path.join(sys.argv[1], "llama_cpp")]
sys.modules["llama_cpp"] = package
try:
    import typing_extensions  # noqa: F401
except ImportError:
    stub = types.ModuleType("typing_extensions")
    stub.TypeAlias = getattr(typing, "TypeAlias", object)
    sys.modules["typing_extensions"] = stub
import importlib
out = {"structs": {}, "functions": {}, "modules": []}
for module in json.loads(sys.argv[2]):
    if not os.path.exists(os.path.join(sys.argv[1], "llama_cpp", module + ".py")):
        continue
    L = importlib.import_module("llama_cpp." + module)
    out["modules"].append(module)
    for name, obj in vars(L).items():
        if isinstance(obj, ctypes._CFuncPtr) and obj.argtypes is not None:
            out["functions"][name] = len(obj.argtypes)
        if isinstance(obj, type) and issubclass(obj, (ctypes.Structure, ctypes.Union)) and obj.__module__ == L.__name__ \
                and getattr(obj, "_fields_", None):
            out["structs"][name] = {"size": ctypes.sizeof(obj),
                                    "fields": {f[0]: getattr(obj, f[0]).offset for f in obj._fields_},
                                    # a nested struct/union's first member: C may declare the union anonymous
                                    "first": {f[0]: f[1]._fields_[0][0] for f in obj._fields_
                                              if isinstance(f[1], type) and issubclass(f[1], (ctypes.Structure, ctypes.Union))
                                              and getattr(f[1], "_fields_", None)}}
print(json.dumps(out))
"""
    r = subprocess.run([sys.executable, "-c", script, str(package_dir), json.dumps(sorted(BOUND))],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"the built bindings do not import:\n{r.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def headers(source: Path, modules: Iterable[str]) -> list[Path]:
    """The engine's headers for the bindings ``modules`` (a module whose headers are missing fails the check)."""
    found = []
    for module in modules:
        for name in BOUND[module]:
            path = next((source / d / name for d in HEADER_DIRS if (source / d / name).is_file()), None)
            if path is None:
                raise SystemExit(f"the engine's source has no {name} (looked in {', '.join(HEADER_DIRS)}), "
                                 f"which the bindings' {module} module binds")
            found.append(path)
    return found


def c_layouts(source: Path, header_files: list[Path], names: Iterable[str], fields: dict[str, Any],
              work: Path) -> dict[str, Any]:
    """The same figures from the engine's own headers, by a C program the compiler lays out.

    A field the header lacks fails the compile; when that field is a nested union or struct, C may have declared
    it anonymous, so its first member's offset (the same place) is asked for instead, once.
    """
    text = "\n".join(h.read_text() for h in header_files)
    present = [n for n in names if re.search(rf"\bstruct\s+{re.escape(n)}\s*\{{", text)]
    member = {n: {f: f for f in fields[n]["fields"]} for n in present}
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or "cc"
    c_file, exe = work / "layouts.c", work / "layouts"
    folders = dict.fromkeys([*(h.parent for h in header_files), source / "include", source / "ggml" / "include"])
    includes = [arg for folder in folders for arg in ("-I", str(folder))]  # the checked headers' own folders first
    for _attempt in range(64):
        lines = ["#include <stddef.h>", "#include <stdio.h>", *(f'#include "{h.name}"' for h in header_files),
                 "int main(void) {", 'printf("{");']
        for i, name in enumerate(present):
            sep = "," if i else ""
            lines.append(f'printf("{sep}\\"{name}\\": {{\\"size\\": %zu, \\"fields\\": {{", sizeof(struct {name}));')
            for j, (field, c_name) in enumerate(member[name].items()):
                fsep = "," if j else ""
                lines.append(f'printf("{fsep}\\"{field}\\": %zu", offsetof(struct {name}, {c_name}));')
            lines.append('printf("}}");')
        lines += ['printf("}\\n");', "return 0; }"]
        c_file.write_text("\n".join(lines) + "\n")
        r = subprocess.run([cc, *includes, str(c_file), "-o", str(exe)], capture_output=True, text=True)
        if r.returncode == 0:
            return json.loads(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout)
        missing = re.search(r"struct (\w+).? has no member named .(\w+).", r.stderr)
        first = fields.get(missing.group(1), {}).get("first", {}).get(missing.group(2)) if missing else None
        if not missing or first is None or member[missing.group(1)][missing.group(2)] == first:
            raise SystemExit("the bindings name struct fields the engine's headers do not have:\n" + r.stderr[-3000:])
        member[missing.group(1)][missing.group(2)] = first
    raise SystemExit("the struct layout check did not converge")


def c_parameters(header_files: Iterable[Path]) -> dict[str, int]:
    """How many parameters each exported function of the headers takes (variadic ones left out)."""
    text = "\n".join(h.read_text() for h in header_files)
    text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)
    found: dict[str, int] = {}
    for m in re.finditer(r"\b[A-Z]+_API\b[^;{}()]*?\b(\w+)\s*\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):  # to the parenthesis that closes the parameter list
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        params = text[m.end():i - 1]
        while re.search(r"\([^()]*\)", params):  # a function-pointer parameter's own list holds commas too
            params = re.sub(r"\([^()]*\)", "", params)
        parts = [p.strip() for p in params.split(",")]
        if "..." not in parts:
            found[m.group(1)] = 0 if parts in ([""], ["void"]) else len(parts)
    return found


def check_layout(package_dir: Path, source: Path, work: Path) -> dict[str, Any]:
    """Fail unless every struct the bindings declare and the headers define has the same size and offsets, and
    every bound function the headers declare takes as many parameters as the bindings pass.

    Covers llama.h (``llama_cpp``) and, where the bindings have it, the multimodal library's mtmd.h and
    mtmd-helper.h (``mtmd_cpp``: images through an ``mmproj``)."""
    declared = ctypes_layouts(package_dir)
    mine = declared["structs"]
    header_files = headers(source, declared["modules"])
    theirs = c_layouts(source, header_files, sorted(mine), mine, work)
    differ = {name for name in theirs if {k: mine[name][k] for k in ("size", "fields")} != theirs[name]}
    problems = [f"{name}: size {mine[name]['size']}, offsets {mine[name]['fields']} in the bindings; size "
                f"{theirs[name]['size']}, offsets {theirs[name]['fields']} in the headers"
                for name in sorted(differ - set(UNUSED))]
    arity = c_parameters(header_files)
    bound = {name: f for name, f in declared["functions"].items() if name in arity}
    problems += [f"{name}(): the bindings pass {n} parameters, the headers declare {arity[name]}"
                 for name, n in sorted(bound.items()) if n != arity[name] and name not in UNUSED]
    if problems:
        raise SystemExit("the bindings disagree with the engine's headers:\n" + "\n".join(problems))
    for name in sorted(differ & set(UNUSED)):
        say(f"{name} differs from the headers (size {mine[name]['size']} vs {theirs[name]['size']}): {UNUSED[name]}")
    say(f"struct layouts checked against {', '.join(h.name for h in header_files)}: {len(theirs) - len(differ)} "
        f"identical ({', '.join(sorted(set(theirs) - differ))}); {len(bound)} functions' parameter counts identical")
    return {"structs": sorted(set(theirs) - differ), "ignored": sorted(differ), "functions": sorted(bound),
            "headers": [h.name for h in header_files]}


def ggml_types(source: Path) -> dict[str, int]:
    text = (source / "ggml" / "include" / "ggml.h").read_text()
    return {m.group(1).lower(): int(m.group(2)) for m in re.finditer(r"GGML_TYPE_(\w+)\s*=\s*(\d+)", text)
            if m.group(1) != "COUNT"}


def build(spec: dict[str, Any], wheelhouse_root: Path | None = None) -> Path:
    """Build (or find cached) the wheel ``spec`` describes; returns its path. See the backend gallery's ``build:``."""
    bindings, engine = spec["bindings"], spec["engine"]
    extra = [str(a) for a in spec.get("cmake_args") or []]
    flags = cmake_flags(extra)
    location = os.environ.get(engine.get("env") or "", "") or engine["url"]
    with tempfile.TemporaryDirectory(prefix="localai-build-") as tmp:
        work = Path(tmp)
        hint = (f"give the source archive (or a source folder) with {engine['env']}=PATH" if engine.get("env") else "")
        source, identity = fetch_source(location, engine.get("sha256"), engine.get("tree_sha256"), work, hint)
        key = hashlib.sha256("|".join([bindings["requirement"], bindings["sha256"], identity, flags,
                                       platform.machine(), sys.platform]).encode()).hexdigest()[:16]
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", engine.get("name") or "engine")
        house = (wheelhouse_root or cache_root() / "wheels") / f"{name}-{key}"
        cached = sorted(house.glob("*.whl"))
        if cached:
            say(f"using the cached build {cached[0]}")
            check_wheel(cached[0], source, work)  # a few seconds: a cache made before a check was added gets it too
            return cached[0]
        sdist = fetch_sdist(bindings["requirement"], bindings["sha256"], work)
        unpacked = work / "bindings"
        unpacked.mkdir()
        _extract(sdist, unpacked)
        tree = _top_folder(unpacked)
        vendored = tree / engine.get("replaces", "vendor/llama.cpp")
        shutil.rmtree(vendored, ignore_errors=True)
        shutil.copytree(source, vendored, symlinks=True)
        marker = {"engine": engine.get("name"), "commit": engine.get("commit"), "source": identity,
                  "bindings": bindings["requirement"], "cmake_args": flags, "ggml_types": ggml_types(source)}
        (tree / "llama_cpp" / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        say(f"building {bindings['requirement']} over {engine.get('name')} {str(engine.get('commit') or '')[:12]} "
            f"(CMAKE_ARGS={flags}); about 10 minutes on 2 cores")
        out = work / "wheel"
        env = dict(os.environ, CMAKE_ARGS=flags, CMAKE_BUILD_PARALLEL_LEVEL=os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL")
                   or str(os.cpu_count() or 1))
        subprocess.run([*PIP, "wheel", "--disable-pip-version-check", "--no-deps", "--no-cache-dir",
                        "-w", str(out), str(tree)], check=True, env=env, stdout=sys.stderr)
        wheel = next(out.glob("*.whl"))
        check_wheel(wheel, vendored, work)
        house.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=house.name + ".", dir=house.parent))
        shutil.copy2(wheel, staging / wheel.name)
        shutil.rmtree(house, ignore_errors=True)
        staging.rename(house)
        say(f"built {house / wheel.name}")
        return house / wheel.name


def check_wheel(wheel: Path, source: Path, work: Path) -> None:
    """The layout check on the wheel as built (its libraries loaded from an unpacked copy)."""
    unpacked = work / "wheel-check"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(unpacked)
    for lib in (unpacked / "llama_cpp" / "lib").glob("*"):
        lib.chmod(0o755)
    check_layout(unpacked, source, work)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--print-cmake-flags", action="store_true", help="print this CPU's CMake flags and exit")
    ap.add_argument("--spec", help="the backend gallery's build section, as JSON")
    ap.add_argument("--pip", help="the pip command to run, as a JSON list (default: this Python's pip)")
    ap.add_argument("--wheelhouse", type=Path, help="where built wheels are cached (default: ~/.cache/localai/wheels)")
    args = ap.parse_args(argv)
    if args.print_cmake_flags:
        print(cmake_flags())
        return 0
    if not args.spec:
        ap.error("--spec or --print-cmake-flags")
    if args.pip:
        PIP[:] = json.loads(args.pip)
    try:
        wheel = build(json.loads(args.spec), args.wheelhouse)
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(map(str, exc.cmd[:4]))} ... exited with status {exc.returncode}", file=sys.stderr)
        return 1
    print(json.dumps({"wheel": str(wheel)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
