"""llama.cpp backend for localai, through llama-cpp-python. The engine is imported only when a model loads."""
