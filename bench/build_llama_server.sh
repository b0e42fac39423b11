#!/usr/bin/env bash
# Build llama.cpp's own C++ `llama-server` from the llama.cpp vendored in the pinned llama-cpp-python sdist,
# with the same CPU flags as our wheel, for bench/run.py's baseline. Cached by the same key as the wheel.
# Prints the binary's path. About 8 minutes on 2 cores the first time; instant afterwards.
#   bench/build_llama_server.sh                      # stock llama.cpp (llama-cpp-python's vendored copy)
#   bench/build_llama_server.sh ARCHIVE              # another llama.cpp source archive, e.g. the turboquant fork's
#                                                    # (../shared/vendor/llama-cpp-turboquant-*.tar.gz), cached by its sha256
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/llama_cpp_build.sh
ARCHIVE=${1:-}
if [ -n "$ARCHIVE" ]; then
  OUT=$LOCALAI_CACHE/llama-server-$(printf '%s|%s' "$(sha256sum "$ARCHIVE" | cut -c1-64)" "$LLAMA_CPP_BUILD_KEY" | sha256sum | cut -c1-16)
else
  OUT=$LOCALAI_CACHE/llama-server-$LLAMA_CPP_BUILD_KEY
fi
if [ -x "$OUT/llama-server" ]; then echo "$OUT/llama-server"; exit 0; fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -n "$ARCHIVE" ]; then
  echo "[llama-server] building from $ARCHIVE" >&2
  mkdir "$WORK/src" && tar xzf "$ARCHIVE" -C "$WORK/src"
  SRC=$(echo "$WORK"/src/*)
else
  echo "[llama-server] fetching the llama-cpp-python $LLAMA_CPP_VERSION sdist" >&2
  python3 -m pip download -q --no-deps --no-binary :all: -d "$WORK" "llama-cpp-python==$LLAMA_CPP_VERSION" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  tar xzf "$WORK"/llama_cpp_python-*.tar.gz -C "$WORK"
  SRC=$(echo "$WORK"/llama_cpp_python-*/vendor/llama.cpp)
fi
# Same flags as the wheel, except that the server itself is built (examples/tools stay off otherwise).
FLAGS="${CMAKE_FLAGS/-DLLAMA_BUILD_EXAMPLES=OFF/${ARCHIVE:+-DLLAMA_BUILD_EXAMPLES=OFF}} -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_WEBUI=OFF -DCMAKE_BUILD_TYPE=Release"
echo "[llama-server] cmake $FLAGS" >&2
# shellcheck disable=SC2086
cmake -S "$SRC" -B "$WORK/build" $FLAGS >&2
cmake --build "$WORK/build" --target llama-server -j "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" >&2
mkdir -p "$OUT.tmp"
cp "$WORK/build/bin/llama-server" "$OUT.tmp/"
find "$WORK/build/bin" -name '*.so*' -exec cp -P {} "$OUT.tmp/" \; 2>/dev/null || true
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
echo "$OUT/llama-server"
