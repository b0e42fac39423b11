"""Image-text-to-text models (``type: AutoModelForImageTextToText``; Gemma 3, LLaVA, ...): the model's own
processor turns the rendered prompt and the request's images into token ids and pixel values, resizing and
normalising as the model was trained; decoding is the causal LM's loop, the pixels going into its first step.
Worker-side only."""

from __future__ import annotations

from typing import Any

from localai.types import GenerateRequest, ModelInfo

from localai_transformers.causal import CausalLM
from localai_transformers.source import Source, model_class


class ImageTextToText(CausalLM):
    kind = "AutoModelForImageTextToText"

    def __init__(self, model: Any, processor: Any, config: Any, options: dict[str, Any], backend: str, device: str,
                 source: Source, chat_template: str | None) -> None:
        super().__init__(model, processor.tokenizer, config, options, backend, device, source, chat_template)
        self.processor = processor
        # The text the processor expands into an image's tokens: Gemma 3's <start_of_image>, LLaVA's <image>, ...
        self.placeholder = getattr(processor, "boi_token", None) or getattr(processor, "image_token", None)
        if not self.placeholder:
            raise ValueError(f"the processor of model {config.name!r} ({type(processor).__name__}) names no image token")

    @classmethod
    def load(cls, kind: str, source: Source, config: Any, options: dict[str, Any], backend: str, device: str,
             dtype: Any, trust: bool, quant: Any) -> ImageTextToText:
        from transformers import AutoProcessor

        if source.gguf_file:
            raise ValueError(f"type {kind} loads an HF folder with its processor, not a .gguf file (for a GGUF with an "
                             "mmproj use the llama-cpp backend)")
        kwargs: dict[str, Any] = {"trust_remote_code": trust, **source.kwargs()}
        processor = AutoProcessor.from_pretrained(source.path, **kwargs)
        if getattr(processor, "tokenizer", None) is None or getattr(processor, "image_processor", None) is None:
            raise ValueError(f"{source.describe()} has no image processor: it is not an image-text-to-text model")
        load_kwargs = {**kwargs, "dtype": dtype}
        if quant is not None:
            load_kwargs.update(quantization_config=quant, device_map=device)
        model = model_class(kind).from_pretrained(source.path, **load_kwargs)
        if quant is None:
            model.to(device)
        model.eval()
        template = getattr(processor, "chat_template", None) or getattr(processor.tokenizer, "chat_template", None)
        return cls(model, processor, config, options, backend, device, source, template)

    def info(self) -> ModelInfo:
        return super().info().model_copy(update={"vision": True, "image_placeholder": self.placeholder})

    def prompt_inputs(self, request: GenerateRequest) -> tuple[list[int], dict[str, Any]]:
        if not request.images:
            return super().prompt_inputs(request)
        if isinstance(request.prompt, list):
            raise ValueError("a prompt of token ids cannot carry images")
        encoded = self.processor(text=[request.prompt or ""], images=[[i.rgb() for i in request.images]],
                                 return_tensors="pt", add_special_tokens=request.add_special)
        ids = [int(t) for t in encoded["input_ids"][0]]
        dtype = getattr(self.model, "dtype", None)
        first = {k: (v.to(self.tensor_device, dtype=dtype) if v.is_floating_point() else v.to(self.tensor_device))
                 for k, v in encoded.items() if k not in ("input_ids", "attention_mask")}
        return ids, first

