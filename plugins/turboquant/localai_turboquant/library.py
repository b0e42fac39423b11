"""Which llama.cpp library this worker runs. Imports no engine: it must run before ``llama_cpp`` loads.

llama-cpp-python picks its shared library when ``llama_cpp`` is first imported (``LLAMA_CPP_LIB_PATH``);
the worker serves only this model, so setting the variable in the worker affects nothing else.
"""

from __future__ import annotations

import os
import sys


def use_library(lib_path: str | None) -> None:
    """Point llama-cpp-python at ``lib_path`` (``None``: its own build); refuse if another is already loaded."""
    wanted = os.path.realpath(lib_path) if lib_path else None
    if "llama_cpp" in sys.modules:
        loaded = os.environ.get("LLAMA_CPP_LIB_PATH")
        if (os.path.realpath(loaded) if loaded else None) != wanted:
            raise RuntimeError(f"this worker already loaded llama.cpp from {loaded or 'llama-cpp-python'}; "
                               f"cannot switch to {lib_path or 'llama-cpp-python'}")
        return
    if wanted:
        os.environ["LLAMA_CPP_LIB_PATH"] = wanted
    else:
        os.environ.pop("LLAMA_CPP_LIB_PATH", None)
