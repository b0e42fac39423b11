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
# (`localai backends install`), each cached under ~/.cache/localai/backend-envs/<name>-<key>; the key hashes the
# backend's plugin sources (turboquant: with llama_cpp's, which its environment installs), this checkout's path, the
# backend gallery, the core's dependencies and pip's configuration, so a change to any of them rebuilds that
# environment and no other. The tests get LOCALAI_BACKENDS_PATH: a folder of links to the current environments.
# openvino-transformers is installed by its own name, as the README tells users to, so its tests walk the flavour
# answering to `transformers` (in a backends folder of its own: here `transformers` is the CPU flavour).
# turboquant builds the llama-cpp-turboquant fork (cached by source and flags), from the vendored archive when
# ../shared/vendor has it (LOCALAI_TURBOQUANT_SOURCE), else from the pinned upstream URL.
TEST_BACKENDS=${LOCALAI_TEST_BACKENDS-diffusers transformers openvino-transformers vllm turboquant}
VENDORED_TURBOQUANT=$(ls ../shared/vendor/llama-cpp-turboquant-*.tar.gz 2>/dev/null | head -1)
if [ -n "$VENDORED_TURBOQUANT" ] && [ -z "${LOCALAI_TURBOQUANT_SOURCE:-}" ]; then
  export LOCALAI_TURBOQUANT_SOURCE=$(cd "$(dirname "$VENDORED_TURBOQUANT")" && pwd)/$(basename "$VENDORED_TURBOQUANT")
fi
env_key() {  # the cache key of one backend's environment
  local plugins=${1#openvino-}
  [ "$1" = turboquant ] && plugins="turboquant llama_cpp"
  { for p in $plugins; do
      find "plugins/$p" -type f -not -path '*/build/*' -not -path '*/__pycache__/*' -not -path '*.egg-info/*' \
        -not -path '*/tests/*' -print0 2>/dev/null | sort -z | xargs -0r sha256sum; done
    # Each environment has the core installed editable from this checkout: another checkout needs its own.
    pwd
    sha256sum core/localai/install/backends/index.yaml pyproject.toml
    echo "$1|${LOCALAI_FORCE_META_BACKEND_CAPABILITY:-}"; .venv/bin/python -VV
    .venv/bin/python -m pip config list 2>/dev/null; } | sha256sum | cut -c1-16
}
install_test_backends() {
  local envs name key links
  envs=${XDG_CACHE_HOME:-$HOME/.cache}/localai/backend-envs
  # One links folder per checkout, rebuilt each run: benches and single test files can reuse it afterwards.
  links=${XDG_CACHE_HOME:-$HOME/.cache}/localai/test-backends-$(pwd | sha256sum | cut -c1-12)
  rm -rf "$links" && mkdir -p "$links" "$envs"
  for name in $TEST_BACKENDS; do
    key=$(env_key "$name")
    if [ -f "$envs/$name-$key/$name/metadata.json" ]; then
      echo "[test] backend $name: cached in $envs/$name-$key" >&2
    else
      echo "[test] installing backend $name into $envs/$name-$key" >&2
      rm -rf "$envs/$name-$key"
      .venv/bin/localai backends install "$name" --backends-path "$envs/$name-$key" --force || return 1
    fi
    touch "$envs/$name-$key"
    ln -s "$envs/$name-$key/$name" "$links/$name"
  done
  # Environments are GBs of torch: drop those unused for three hours (other checkouts may still use recent ones),
  # and the folders of the layout before per-backend environments, which nothing uses now.
  find "$envs" -mindepth 1 -maxdepth 1 -mmin +180 -exec rm -rf {} + 2>/dev/null
  find "$(dirname "$envs")" -mindepth 1 -maxdepth 1 -name 'backends-*' -exec rm -rf {} + 2>/dev/null
  echo "[test] LOCALAI_BACKENDS_PATH=$links" >&2
  export LOCALAI_BACKENDS_PATH=$links
}
install_test_backends || { echo "[test] installing test backends failed" >&2; exit 1; }

# Debian packages the tests drive: chromium for the web UI's browser tests (Playwright never downloads browsers
# here); PostgreSQL's server and HAProxy for the replica tests (tests/api/test_replicas.py starts its own of each).
PACKAGES=()
[ -x /usr/bin/chromium ] || PACKAGES+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || PACKAGES+=(postgresql)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || PACKAGES+=(haproxy)
if [ ${#PACKAGES[@]} -gt 0 ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${PACKAGES[@]}" >/dev/null; } \
    || echo "[test] could not install ${PACKAGES[*]}: the tests that drive them will fail" >&2
fi
.venv/bin/python -m pytest "${MARK[@]}" "${ARGS[@]}"
rc=$?
if [ $rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit $rc
