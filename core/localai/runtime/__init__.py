"""Loaded models: one worker process per model (``worker/``), started on first use, restarted after it dies,
unloaded by the lifecycle rules."""
