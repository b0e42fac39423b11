"""vLLM backend for localai."""
