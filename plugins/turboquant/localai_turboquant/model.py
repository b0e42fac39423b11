"""A GGUF on the turboquant fork's llama.cpp: llama-cpp's model, loaded against another library.

Importing this module imports llama_cpp: :func:`localai_turboquant.library.use_library` must run first.
"""

from __future__ import annotations

from typing import Any

from localai_llama_cpp.model import LlamaCppModel

from localai_turboquant.options import HOW, is_turbo


def check_fork(lib_path: str | None) -> None:
    """Turbo cache types need the fork's ggml (it exports the turbo WHT op); say so before llama.cpp aborts."""
    from localai_llama_cpp import ggml

    if not ggml.has_symbol("ggml-base", "ggml_turbo_wht") and not ggml.has_symbol("ggml", "ggml_turbo_wht"):
        raise RuntimeError(f"the llama.cpp library in {lib_path or ggml.lib_dir()} is not a turboquant build "
                           f"(it has no turbo cache types); {HOW}")


class TurboQuantModel(LlamaCppModel):
    """Everything but the library is llama-cpp's: the llama-cpp plugin's hooks serve this class too."""

    @classmethod
    def load(cls, config: Any, model_path: str | None, options: dict[str, Any], backend: str) -> LlamaCppModel:
        lib_path = options.get("lib_path")
        if config.mmproj and lib_path:
            # llama-cpp-python's libmtmd is built against its own libllama, not the fork's: mixing them misreads structs
            raise ValueError(f"model {config.name!r}: mmproj (images) is not supported with turboquant's own library "
                             "(lib_path) yet; use backend: llama-cpp for vision")
        turbo = is_turbo(config.cache_type_k) or is_turbo(config.cache_type_v)
        if turbo:
            check_fork(lib_path)
            config = config.model_copy(update={"flash_attention": True})  # the fork's turbo kernels are FA-only
        return super().load(config, model_path, options, backend)
