# Sourced by setup.sh and bench/build_llama_server.sh: the one place that says how llama.cpp is built here.
# The default build's AMX kernels segfault in decode on this CPU (llama.cpp #20824): build without them.
LLAMA_CPP_VERSION=${LLAMA_CPP_VERSION:-0.3.36}
# No -march=native (it would turn the AMX kernels back on where the CPU has AMX): the SIMD flags follow what this
# CPU has, so a machine without AVX-512 gets a build that runs there (AVX-512 code dies with SIGILL on it).
_cpu_has() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }
_SIMD="-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
if _cpu_has avx512f && _cpu_has avx512cd && _cpu_has avx512vl && _cpu_has avx512dq && _cpu_has avx512bw; then
  _SIMD="$_SIMD -DGGML_AVX512=ON"
else
  _SIMD="$_SIMD -DGGML_AVX512=OFF"
fi
CMAKE_FLAGS=${LLAMA_CPP_CMAKE_ARGS:-"-DGGML_NATIVE=OFF $_SIMD -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_RPC=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"}
# Builds are cached by version, flags and machine, so a cached build is always the one these flags describe.
LLAMA_CPP_BUILD_KEY=$(printf '%s|%s|%s' "$LLAMA_CPP_VERSION" "$CMAKE_FLAGS" "$(uname -m)" | sha256sum | cut -c1-16)
LOCALAI_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/localai
