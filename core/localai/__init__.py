"""localai: a plugin-based local AI inference server."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("localai")
"""Decorate a plugin's hook implementations with this marker."""

__all__ = ["hookimpl", "__version__"]
