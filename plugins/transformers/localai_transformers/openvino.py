"""OpenVINO models through optimum-intel: ``OVModelForCausalLM`` (same decode loop as torch models) and
``OVModelForFeatureExtraction`` (mean-pooled embeddings). A safetensors folder is exported to IR at load
when it holds none (``export`` option). Needs the ``[openvino]`` extra in the backend environment."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from localai_transformers.causal import CausalLM
from localai_transformers.embeddings import PooledEmbedder, folder_normalizes
from localai_transformers.options import OV_CAUSAL, OV_FEATURES, extra
from localai_transformers.source import Source, restore_gguf_tokenizer

log = logging.getLogger("localai_transformers")

IR_FILE = "openvino_model.xml"


def ov_device(config: Any) -> str:
    """``main_gpu`` as an OpenVINO device (default AUTO), refused with the devices OpenVINO sees."""
    import openvino

    available = openvino.Core().available_devices
    value = str(getattr(config, "main_gpu", None) or "").strip()
    if not value:
        device = "AUTO" if len(available) > 1 else (available[0] if available else "CPU")
        log.info("model %r: main_gpu not set, OpenVINO device %s (available: %s)", config.name, device, ", ".join(available))
        return device
    head = value.split(":", 1)[0].upper()
    if head in ("AUTO", "MULTI", "HETERO"):
        wanted = [d.strip().lstrip("-").upper() for d in value.split(":", 1)[1].split(",")] if ":" in value else []
    else:
        wanted = [value.upper()]
    missing = [d for d in wanted if d and d not in available and d.split(".")[0] not in available]
    if missing:
        raise ValueError(f"main_gpu {value!r}: OpenVINO device {', '.join(missing)} is not here; available devices: "
                         f"{', '.join(available) or 'none'}")
    return value.upper() if head not in ("AUTO", "MULTI", "HETERO") else value


def ov_classes() -> Any:
    try:
        import optimum.intel as oi
    except ImportError as exc:
        raise ValueError("types OVModelForCausalLM / OVModelForFeatureExtraction run on OpenVINO, which this "
                         "transformers environment lacks: install the OpenVINO flavour with `localai backends install "
                         "openvino-transformers` (it answers to backend: transformers where no other transformers "
                         f"environment is installed; else write backend: openvino-transformers) ({exc})") from None
    return oi


def load_openvino(kind: str, source: Source, config: Any, options: dict[str, Any], backend: str) -> Any:
    if source.gguf_file:
        raise ValueError(f"type {kind} loads an OpenVINO IR or safetensors folder, not a .gguf file; write an HF folder "
                         "from the GGUF first (transformers AutoModelForCausalLM.from_pretrained(..., gguf_file=...).save_pretrained)")
    oi = ov_classes()
    from transformers import AutoTokenizer

    device = ov_device(config)
    has_ir = not source.hub and Path(source.path, IR_FILE).is_file()
    export = options.get("export")
    if not has_ir and export is False:
        raise ValueError(f"{source.describe()} holds no OpenVINO IR ({IR_FILE}) and option export is off")
    trust = bool(extra(config, "trust_remote_code") or False)
    cls = oi.OVModelForCausalLM if kind == OV_CAUSAL else oi.OVModelForFeatureExtraction
    log.info("loading %s as %s on OpenVINO %s%s", source.describe(), kind, device, "" if has_ir else " (exporting to IR)")
    # f16: false asks for full precision; otherwise OpenVINO picks the device's fastest (bf16 on CPUs that have it)
    ov_config = {"INFERENCE_PRECISION_HINT": "f32"} if getattr(config, "f16", None) is False else {}
    model = cls.from_pretrained(source.path, export=not has_ir, device=device, trust_remote_code=trust, compile=True,
                                ov_config=ov_config or None)
    tokenizer = AutoTokenizer.from_pretrained(source.path, trust_remote_code=trust)
    if kind == OV_CAUSAL:
        restore_gguf_tokenizer(tokenizer, source)
        template = getattr(tokenizer, "chat_template", None)
        return OVCausalLM(model, tokenizer, config, options, backend, device, source, template)
    normalize = options.get("normalize")
    if normalize is None:
        shipped = None if source.hub else folder_normalizes(source.path)
        normalize = True if shipped is None else shipped
    return OVEmbedder(model, tokenizer, config, options, backend, device, OV_FEATURES, bool(normalize))


class OVCausalLM(CausalLM):
    """The torch decode loop over an OpenVINO model: it keeps its KV state inside; ``past_key_values`` only says
    "continue" (``None`` starts a new sequence)."""

    kind = OV_CAUSAL
    joinable = False  # the KV state lives inside the OpenVINO request: one sequence at a time


class OVEmbedder(PooledEmbedder):
    kind = OV_FEATURES
