#!/usr/bin/env bash
# The diffusers backend's own environment (torch + diffusers never go into the server's .venv):
#   .venv-diffusers with torch==2.13.0 (the CPU build on this machine's disk) installed FIRST, then
#   localai-core and localai-diffusers[engine] (editable), with torch pinned so pip never swaps it.
# Idempotent (a stamp keyed by the pins). Until `localai backends install diffusers` lands, the server reaches
# it through LOCALAI_PYTHON_DIFFUSERS=<repo>/.venv-diffusers/bin/python, and the plugin's tests find it here.
# Env: LOCALAI_DIFFUSERS_VENV, LOCALAI_DIFFUSERS_TORCH (default 2.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${LOCALAI_DIFFUSERS_VENV:-$ROOT/.venv-diffusers}
TORCH=${LOCALAI_DIFFUSERS_TORCH:-2.13.0}
say() { printf '\033[1m[setup diffusers]\033[0m %s\n' "$*" >&2; }

[ -x "$VENV/bin/python" ] || { say "creating $VENV"; python3 -m venv "$VENV"; }
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
STAMP="$VENV/.localai-diffusers-$(printf '%s|%s' "$TORCH" "$(sha256sum plugins/diffusers/pyproject.toml pyproject.toml | sha256sum)" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  say "installing torch==$TORCH first (CPU build), then diffusers, transformers, accelerate"
  $PIP install -q "torch==$TORCH" 2>&1 | grep -v '^WARNING: Location' || true
  # httpx: localai.testing (bench/images_bench.py starts a server from this environment)
  $PIP install -q "torch==$TORCH" -e . -e "plugins/diffusers[engine]" httpx 2>&1 | grep -v '^WARNING: Location' || true
  rm -f "$VENV"/.localai-diffusers-* && touch "$STAMP"
fi
"$VENV/bin/python" -c "import torch, diffusers, transformers, localai_diffusers.model" 2>/dev/null \
  || { say "the diffusers environment $VENV is broken (import failed)"; exit 1; }
say "ready: LOCALAI_PYTHON_DIFFUSERS=$VENV/bin/python"
