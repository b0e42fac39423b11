"""localai backend for ik_llama.cpp (the ``ik-llama-cpp-python`` wheel), driven through its C API."""
