"""Hugging Face transformers backend for localai."""
