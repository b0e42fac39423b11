"""Moved to :mod:`localai.runtime.worker`; ``python -m localai.worker`` keeps working."""
