# Sourced by setup.sh and bench/build_llama_server.sh: the one place that says how llama.cpp is built here.
# The default build's AMX kernels segfault in decode on this CPU (llama.cpp #20824): build without them.
LLAMA_CPP_VERSION=${LLAMA_CPP_VERSION:-0.3.36}
CMAKE_FLAGS=${LLAMA_CPP_CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_RPC=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"}
# Builds are cached by version, flags and machine, so a cached build is always the one these flags describe.
LLAMA_CPP_BUILD_KEY=$(printf '%s|%s|%s' "$LLAMA_CPP_VERSION" "$CMAKE_FLAGS" "$(uname -m)" | sha256sum | cut -c1-16)
LOCALAI_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/localai
