"""Where a model comes from (models-folder path, ``.gguf`` file, hub id), which device and dtype it gets,
and which model class serves its ``type:``: what :mod:`loading` and the model kinds it dispatches to share.
Worker-side: torch and transformers are imported here, at load."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localai_transformers.options import (
    AUTOMODEL,
    CAUSAL,
    SENTENCE,
    device_kind,
    extra,
)

log = logging.getLogger("localai_transformers")


@dataclass
class Source:
    """``path`` is a local folder or a hub id; ``gguf_file`` a file name inside ``path`` to dequantize."""

    path: str
    gguf_file: str | None = None
    hub: bool = False

    def kwargs(self) -> dict[str, Any]:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}

    def describe(self) -> str:
        if self.hub:
            return f"hub id {self.path}"
        return os.path.join(self.path, self.gguf_file) if self.gguf_file else self.path


def models_root(config: Any, model_path: str | None) -> Path | None:
    """The models folder: ``model_path`` minus the YAML's relative ``parameters.model``."""
    rel = getattr(config.parameters, "model", None)
    if not model_path or not rel:
        return None
    path = Path(model_path)
    for _ in Path(rel).parts:
        path = path.parent
    return path


def resolve_source(config: Any, model_path: str | None) -> Source:
    """A folder or ``.gguf`` in the models folder, else (a name without a file suffix) a hub id."""
    rel = getattr(config.parameters, "model", None)
    if not rel or not model_path:
        raise ValueError(f"model {config.name!r} has no parameters.model (a folder or .gguf in the models folder, or a hub id)")
    path = Path(model_path)
    if path.is_dir():
        return Source(str(path))
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ValueError(f"parameters.model {rel!r} is a file but not a .gguf; give a model folder (HF layout), "
                             "a .gguf file or a hub id")
        return Source(str(path.parent), gguf_file=path.name)
    parts = Path(rel).parts
    if path.suffix.lower() in (".gguf", ".safetensors", ".bin") or len(parts) > 2 or rel.startswith("."):
        raise FileNotFoundError(f"model {config.name!r}: parameters.model {rel!r} does not exist ({path} is missing)")
    return Source(rel, hub=True)


def use_models_hf_home(config: Any, model_path: str | None) -> None:
    """Hub downloads go under the models folder (as LocalAI does), unless HF_HOME is set; before transformers loads."""
    root = models_root(config, model_path)
    if root is not None and "HF_HOME" not in os.environ:
        os.environ["HF_HOME"] = str(root / "huggingface")


def hub_error(config: Any, source: Source, root: Path | None, exc: BaseException) -> Exception:
    where = f" ({root})" if root else ""
    return FileNotFoundError(
        f"model {config.name!r}: {source.path!r} is not in the models folder{where} and could not be fetched from the "
        f"Hugging Face hub ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}); put the "
        "model folder in the models path, or allow hub access")


# -- device and precision -----------------------------------------------------------------------


def torch_devices() -> list[str]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda.{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    return devices


def pick_device(config: Any) -> str:
    """``main_gpu`` as a torch device, refused with the devices that exist; unset: CUDA if present, else CPU."""
    import torch

    value = getattr(config, "main_gpu", None)
    kind = device_kind(value)
    if kind == "cpu":
        return "cpu"
    if kind == "cuda":
        text = str(value).strip()
        index = int(text) if text.isdigit() else int(text[5:] or 0)
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= count:
            raise ValueError(f"main_gpu {value!r}: no such device here; available devices: {', '.join(torch_devices())}")
        return f"cuda:{index}"
    if kind == "openvino":
        raise ValueError(f"main_gpu {value!r} is an OpenVINO device; this model runs on torch "
                         f"(available devices: {', '.join(torch_devices())})")
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    log.info("model %r: main_gpu not set, using %s", config.name, device)
    return device


def pick_dtype(config: Any, device: str) -> Any:
    """CPU: fp32 (bf16 when ``f16: true``); CUDA: fp16, or bf16 when ``f16: true`` (LocalAI's meaning), fp32 when false."""
    import torch

    f16 = getattr(config, "f16", None)
    if device == "cpu":
        return torch.bfloat16 if f16 else torch.float32
    if f16:
        if not torch.cuda.is_bf16_supported():
            raise ValueError(f"f16: true asks for bfloat16, which {device} ({torch.cuda.get_device_name(device)}) "
                             "does not support; remove f16 (float16 is the default on CUDA)")
        return torch.bfloat16
    return torch.float32 if f16 is False else torch.float16


def quantization_config(config: Any, device: str) -> Any:
    value = extra(config, "quantization")
    if value is None:
        return None
    q = str(value).strip().lower()
    if not device.startswith("cuda"):
        raise ValueError(f"quantization {value!r} (bitsandbytes) needs a CUDA GPU; this model runs on {device} "
                         f"(available devices: {', '.join(torch_devices())}); remove quantization")
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(f"quantization {value!r} needs bitsandbytes in the backend environment: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=q == "bnb_4bit", load_in_8bit=q == "bnb_8bit")


# -- loading ------------------------------------------------------------------------------------


def model_class(kind: str) -> Any:
    """``type:`` as a transformers class, refused naming the field when there is none."""
    import transformers

    cls = getattr(transformers, kind, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ValueError(f"type {kind!r} is not a model class of transformers {transformers.__version__}; use "
                         f"{CAUSAL} (text generation), {SENTENCE} or {AUTOMODEL} with embeddings: true (embeddings), "
                         "or OVModelForCausalLM / OVModelForFeatureExtraction (OpenVINO)")
    return cls


def restore_gguf_tokenizer(tokenizer: Any, source: Source) -> None:
    """A tokenizer converted from a ``.gguf`` as the GGUF describes it: its chat template and BOS/EOS flags
    (transformers' conversion drops them)."""
    if not source.gguf_file:
        return
    from localai.chat.gguf import restore_gguf_tokenizer as restore

    try:
        restore(tokenizer, os.path.join(source.path, source.gguf_file))
    except Exception as exc:  # noqa: BLE001 - metadata we cannot read leaves transformers' conversion as it is
        log.warning("cannot read the tokenizer metadata of %s: %s", source.describe(), exc)
