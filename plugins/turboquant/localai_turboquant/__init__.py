"""turboquant backend for localai: the llama-cpp backend running a llama.cpp build from the llama-cpp-turboquant fork."""
