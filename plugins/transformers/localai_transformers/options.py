"""The transformers option table and the config checks that need no engine (server process: no torch import).

LocalAI's YAML fields this backend reads: ``type``, ``main_gpu``, ``f16``, ``quantization``,
``trust_remote_code``, ``embeddings``, ``context_size``. Values that can be judged without torch are
judged here, so a bad one shows against the model in ``localai models`` before any request.
"""

from __future__ import annotations

import os
import re
from typing import Any

from localai.names import normalise
from localai.options import OptionSpec, parse_option_list

# ``type:`` values with their own loader; anything else is looked up on ``transformers`` at load.
CAUSAL = "AutoModelForCausalLM"
IMAGE_TEXT = "AutoModelForImageTextToText"  # vision: the model's processor takes the images
SENTENCE = "SentenceTransformer"
AUTOMODEL = "AutoModel"
OV_CAUSAL = "OVModelForCausalLM"
OV_FEATURES = "OVModelForFeatureExtraction"
OPENVINO_TYPES = (OV_CAUSAL, OV_FEATURES)
TYPE_SPELLINGS = {normalise(t): t for t in (CAUSAL, IMAGE_TEXT, SENTENCE, AUTOMODEL, OV_CAUSAL, OV_FEATURES)} | {
    "sentencetransformers": SENTENCE, "sentence-transformers": SENTENCE, "image-text-to-text": IMAGE_TEXT,
    "automodelforvision2seq": IMAGE_TEXT,  # transformers 4's name for it
}
# Backend spellings that mean "this backend with type SentenceTransformer" (LocalAI's names).
SENTENCE_BACKENDS = ("sentencetransformers", "sentence-transformers", "huggingface-embeddings")

QUANTIZATIONS = ("bnb_4bit", "bnb_8bit")
CUDA_DEVICE = re.compile(r"^cuda(?:[.:](\d+))?$", re.IGNORECASE)
OPENVINO_DEVICE = re.compile(r"^(AUTO|CPU|GPU(\.\d+)?|NPU)(:.*)?$|^(MULTI|HETERO|AUTO):.+$", re.IGNORECASE)

OPTIONS: list[OptionSpec] = [
    OptionSpec("parallel", "int", "requests decoded together in one batch (continuous batching: a request joins "
               "and leaves between steps); 1 decodes one at a time", default=8, aliases=("n_parallel",),
               env="TRANSFORMERS_PARALLEL", minimum=1),
    OptionSpec("prefill_chunk_size", "int", "prompt tokens evaluated per forward pass (transformers' own name for "
               "it); between two chunks the running requests decode a token, so a long prompt never stalls them "
               "for longer than one chunk; 0 evaluates a prompt whole", default=512, aliases=("prefill_chunk",),
               env="TRANSFORMERS_PREFILL_CHUNK_SIZE", minimum=0),
    OptionSpec("queue_size", "int", "requests that may wait while the batch is full; beyond it the API answers 429 "
               "(Anthropic: 529) with Retry-After", default=64, aliases=("max_queue",), env="TRANSFORMERS_QUEUE_SIZE"),
    OptionSpec("normalize", "bool", "L2-normalise mean-pooled embeddings of a plain AutoModel (default: as the "
               "folder's sentence-transformers modules say, else on)"),
    OptionSpec("pooling", "str", "pooling of a plain AutoModel's hidden states for embeddings", default="mean",
               choices=("mean", "cls", "last")),
    OptionSpec("export", "bool", "OpenVINO types: export a safetensors folder to OpenVINO IR at load when the "
               "folder holds no IR (default: when needed)"),
    OptionSpec("gguf_cache", "bool", "a .gguf: keep its dequantized checkpoint under ~/.cache/localai/"
               "transformers-gguf so later loads skip the conversion (it takes the model's size in the dtype loaded)",
               default=True, env="TRANSFORMERS_GGUF_CACHE"),
]


def model_type(config: Any) -> str | None:
    """The loader ``type:`` names, LocalAI's spellings accepted; the sentence-transformers aliases imply theirs."""
    raw = (getattr(config, "type", None) or "").strip()
    if raw:
        return TYPE_SPELLINGS.get(normalise(raw), raw)
    if normalise(getattr(config, "backend", None) or "") in SENTENCE_BACKENDS:
        return SENTENCE
    return None


def extra(config: Any, name: str) -> Any:
    """A backend-specific YAML field (``quantization``, ``trust_remote_code``): a ModelConfig field or a kept extra."""
    value = getattr(config, name, None)
    return value if value is not None else (getattr(config, "model_extra", None) or {}).get(name)


def device_kind(main_gpu: Any) -> str | None:
    """``cuda``, ``cpu``, ``openvino`` for a syntactically valid ``main_gpu``, ``None`` when unset; else ValueError."""
    if main_gpu is None or str(main_gpu).strip() == "":
        return None
    value = str(main_gpu).strip()
    if value.isdigit() or CUDA_DEVICE.match(value):
        return "cuda"
    if value.lower() == "cpu":
        return "cpu"
    if OPENVINO_DEVICE.match(value):
        return "openvino"
    raise ValueError(f"main_gpu {main_gpu!r} is not a device: use cuda, cuda.N (or N), cpu, or an OpenVINO device "
                     "(AUTO, CPU, GPU, GPU.N, NPU, MULTI:..., HETERO:...)")


def validate_config(config: Any) -> None:
    """Refuse, naming the field, what this backend can never do with the config (engine-free checks)."""
    kind = model_type(config)
    if kind is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", kind):
        raise ValueError(f"type {kind!r} is not a model class name (e.g. AutoModelForCausalLM, SentenceTransformer, "
                         "OVModelForCausalLM, OVModelForFeatureExtraction)")
    device = device_kind(getattr(config, "main_gpu", None))
    if device == "openvino" and str(config.main_gpu).strip().lower() != "cpu" and kind not in OPENVINO_TYPES:
        raise ValueError(f"main_gpu {config.main_gpu!r} is an OpenVINO device, but type {kind or CAUSAL!r} runs on "
                         "torch: use cuda/cuda.N/cpu, or type OVModelForCausalLM / OVModelForFeatureExtraction")
    quant = extra(config, "quantization")
    if quant is not None:
        q = str(quant).strip().lower()
        if q not in QUANTIZATIONS:
            raise ValueError(f"quantization {quant!r} is not supported; use one of {', '.join(QUANTIZATIONS)}")
        if kind in OPENVINO_TYPES or kind == SENTENCE:
            raise ValueError(f"quantization {quant!r} (bitsandbytes) applies to torch models, not type {kind}")
    trust = extra(config, "trust_remote_code")
    if trust is not None and not isinstance(trust, bool):
        raise ValueError(f"trust_remote_code must be true or false, got {trust!r}")


def parse(entries: list[str], config: Any, environ: dict[str, str] | None = None) -> dict[str, Any]:
    parsed = parse_option_list(entries, OPTIONS, dict(os.environ) if environ is None else environ)
    if parsed.get("queue_size", 0) < 0:
        raise ValueError(f"option 'queue_size': expected 0 (no waiting) or more, got {parsed['queue_size']}")
    validate_config(config)
    return parsed
