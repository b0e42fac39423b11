# Sourced by setup.sh and bench/build_llama_server.sh: the one place that says how llama.cpp is built here.
# The default build's AMX kernels segfault in decode on this CPU (llama.cpp #20824): build without them.
LLAMA_CPP_VERSION=${LLAMA_CPP_VERSION:-0.3.36}
# The CPU flags (SIMD as far as this CPU goes, no -march=native, AMX off) come from the plugin's builder, which
# also builds the turboquant fork: one place decides them. LLAMA_CPP_CMAKE_ARGS replaces them.
CMAKE_FLAGS=$(python3 "$(dirname "${BASH_SOURCE[0]}")/../plugins/llama_cpp/localai_llama_cpp/build.py" --print-cmake-flags)
# Builds are cached by version, flags and machine, so a cached build is always the one these flags describe.
LLAMA_CPP_BUILD_KEY=$(printf '%s|%s|%s' "$LLAMA_CPP_VERSION" "$CMAKE_FLAGS" "$(uname -m)" | sha256sum | cut -c1-16)
LOCALAI_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/localai
