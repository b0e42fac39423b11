"""Loading a model: its ``type:`` (or what the folder holds) picks the kind that serves it (causal LM,
sentence-transformers, pooled AutoModel or OpenVINO); each kind loads itself from the shared :mod:`source`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from localai_transformers.options import (
    AUTOMODEL,
    CAUSAL,
    IMAGE_TEXT,
    OPENVINO_TYPES,
    SENTENCE,
    extra,
    model_type,
)
from localai_transformers.source import (
    hub_error,
    models_root,
    pick_device,
    pick_dtype,
    quantization_config,
    resolve_source,
    use_models_hf_home,
)

log = logging.getLogger("localai_transformers")


def has_vision(source: Any) -> bool:
    """An HF folder whose config has a ``vision_config``: an image-text-to-text model, served with its processor."""
    import json

    config = Path(source.path, "config.json")
    if source.gguf_file or not config.is_file():
        return False
    try:
        return "vision_config" in json.loads(config.read_text())
    except (OSError, ValueError):
        return False


def load(config: Any, model_path: str | None, options: dict[str, Any], backend: str) -> Any:
    """The model object serving ``config``'s type: causal LM, sentence-transformers, pooled AutoModel or OpenVINO."""
    source = resolve_source(config, model_path)
    use_models_hf_home(config, model_path)
    kind = model_type(config)
    if kind is None:
        kind = (SENTENCE if not source.gguf_file and Path(source.path, "modules.json").is_file() else AUTOMODEL) \
            if config.embeddings else IMAGE_TEXT if has_vision(source) else CAUSAL
    if kind in OPENVINO_TYPES:
        from localai_transformers.openvino import load_openvino

        return load_openvino(kind, source, config, options, backend)
    import torch

    if getattr(config, "threads", None):
        torch.set_num_threads(int(config.threads))
    device = pick_device(config)
    dtype = pick_dtype(config, device)
    trust = bool(extra(config, "trust_remote_code") or False)
    log.info("loading %s as %s on %s (%s)", source.describe(), kind, device, str(dtype).removeprefix("torch."))
    try:
        if kind == SENTENCE:
            from localai_transformers.embeddings import SentenceEmbedder

            return SentenceEmbedder.load(source, config, options, backend, device, dtype, trust)
        quant = quantization_config(config, device)
        if config.embeddings:
            from localai_transformers.embeddings import PooledEmbedder

            return PooledEmbedder.load(kind, source, config, options, backend, device, dtype, trust)
        if kind == IMAGE_TEXT:
            from localai_transformers.vision import ImageTextToText

            return ImageTextToText.load(kind, source, config, options, backend, device, dtype, trust, quant)
        from localai_transformers.causal import CausalLM

        return CausalLM.load(kind, source, config, options, backend, device, dtype, trust, quant)
    except OSError as exc:
        if source.hub:
            raise hub_error(config, source, models_root(config, model_path), exc) from None
        raise
