#!/usr/bin/env bash
# Set up (idempotent) and run the test suite with real engines and the real default model (--all: the slow tier too).
# pytest's exit 5 ("no tests collected") is a failure here, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."

# Two tiers. The default run (what CI runs) exercises every feature once: vLLM serving on one engine, OpenVINO,
# transformers serving a GGUF, backend installs, the generated plugin, a short fuzz and soak, fault injection.
# `--all` adds the tests marked `slow`, the same features at length: vLLM's conformance class (about five engine
# starts), the long soak and fuzz. `-m EXPR` picks tests yourself.
ALL=0
ARGS=()
for arg in "$@"; do
  if [ "$arg" = "--all" ]; then ALL=1; else ARGS+=("$arg"); fi
done
MARK=()
if [ $ALL -eq 0 ] && ! printf '%s\n' "${ARGS[@]}" | grep -qx -- '-m'; then
  MARK=(-m "not slow")
  echo "[test] leaving out the tests marked slow (vLLM's conformance class, the long soak and fuzz): bash scripts/test.sh --all runs them" >&2
fi

bash scripts/setup.sh || exit 1

# Strict: a test that needs an engine, environment or browser this machine lacks fails instead of skipping
# (localai.testing.missing), so a green run means every feature was exercised. LOCALAI_TEST_STRICT=0 relaxes it.
export LOCALAI_TEST_STRICT=${LOCALAI_TEST_STRICT:-1}

# Heavier backends live in their own virtual environments, installed the way users install them
# (`localai backends install`), into a backends folder cached between runs under ~/.cache/localai/backends-<key>;
# the key hashes each listed backend's plugin sources, this checkout's path, the backend gallery, the core's dependencies and pip's
# configuration, so a change to any of them rebuilds the environments. The tests get LOCALAI_BACKENDS_PATH.
# openvino-transformers is installed by its own name, as the README tells users to, so its tests walk the flavour
# answering to `transformers` (in a backends folder of its own: here `transformers` is the CPU flavour).
TEST_BACKENDS=${LOCALAI_TEST_BACKENDS-diffusers transformers openvino-transformers vllm}
install_test_backends() {
  local key dir name
  # Keyed over every test backend, installed or not, so the default run and --all share one folder.
  key=$( { for name in $(printf '%s\n' diffusers transformers vllm $TEST_BACKENDS | sed 's/^openvino-//' | sort -u); do
             find "plugins/$name" -type f -not -path '*/build/*' -not -path '*/__pycache__/*' -not -path '*.egg-info/*' \
               -not -path '*/tests/*' -print0 2>/dev/null | sort -z | xargs -0r sha256sum; done
           # Each environment has the core installed editable from this checkout: another checkout needs its own.
           pwd
           sha256sum core/localai/install/backends/index.yaml pyproject.toml
           echo "${LOCALAI_FORCE_META_BACKEND_CAPABILITY:-}"; .venv/bin/python -VV
           .venv/bin/python -m pip config list 2>/dev/null; } | sha256sum | cut -c1-16)
  dir=${XDG_CACHE_HOME:-$HOME/.cache}/localai/backends-$key
  mkdir -p "$dir"
  for name in $TEST_BACKENDS; do
    if [ -f "$dir/$name/metadata.json" ]; then
      echo "[test] backend $name: cached in $dir/$name" >&2
    else
      echo "[test] installing backend $name into $dir" >&2
      .venv/bin/localai backends install "$name" --backends-path "$dir" --force || return 1
    fi
  done
  # Drop other keys' environments (GBs of torch) once unused for a day; other checkouts may still use recent ones.
  touch "$dir"
  find "$(dirname "$dir")" -maxdepth 1 -name 'backends-*' ! -name "backends-$key" -mmin +1440 -exec rm -rf {} + 2>/dev/null
  export LOCALAI_BACKENDS_PATH=$dir
}
install_test_backends || { echo "[test] installing test backends failed" >&2; exit 1; }

# The web UI's browser tests drive Debian's chromium (Playwright never downloads browsers here).
if [ ! -x /usr/bin/chromium ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
    || echo "[test] could not install chromium: the web UI tests will fail" >&2
fi
.venv/bin/python -m pytest "${MARK[@]}" "${ARGS[@]}"
rc=$?
if [ $rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit $rc
