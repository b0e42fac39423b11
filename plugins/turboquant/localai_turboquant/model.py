"""A GGUF on the turboquant fork's llama.cpp: llama-cpp's model, with the turbo cache types resolved and checked."""

from __future__ import annotations

from typing import Any

from localai_llama_cpp.model import LlamaCppModel
from localai_llama_cpp.options import cache_types_of

from localai_turboquant import engine
from localai_turboquant.options import is_turbo


class TurboQuantModel(LlamaCppModel):
    """Everything but the cache types is llama-cpp's, images (``mmproj``) included: the llama-cpp plugin's code serves
    this class too. The build checked the multimodal library's structs and functions against the fork's mtmd.h."""

    @classmethod
    def load(cls, config: Any, model_path: str | None, options: dict[str, Any], backend: str) -> LlamaCppModel:
        problem = engine.check()
        if problem:
            raise RuntimeError(problem)
        k, v = cache_types_of(config)
        if is_turbo(k) or is_turbo(v):
            # Resolved here, by the pinned ids the build verified, rather than by a name lookup in the library.
            options = {**options, "cache_type_ids": {t: engine.type_id(t) for t in (k, v) if t and is_turbo(t)}}
            config = config.model_copy(update={"flash_attention": True})  # the fork's turbo kernels are FA-only
        return super().load(config, model_path, options, backend)
