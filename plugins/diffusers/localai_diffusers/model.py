"""A loaded diffusers pipeline serving :class:`localai.types.ImageRequest` (imported only inside the worker).

One pipeline per worker; requests run one at a time (a pipeline is not thread-safe) with a bounded wait
queue (``queue_size``: more get 429). Cancellation is checked in the pipeline's step callback, so a client
that leaves stops the denoising loop after the current step, before the VAE decodes.
"""

from __future__ import annotations

import base64
import io
import logging
import secrets
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diffusers
import torch
from localai.errors import QueueFull
from localai.types import ImageLimits, ImageRequest, ImageResult, ModelInfo

from localai_diffusers.schedulers import make_scheduler

log = logging.getLogger("localai_diffusers")

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".bin", ".pt", ".pth")


class Cancelled(Exception):
    """Raised from the step callback to leave the denoising loop at once."""


def pick_device(config: Any) -> str:
    """CUDA when there is one (``main_gpu`` picks the index); ``diffusers.cuda: true`` without CUDA is an error."""
    wants_cuda = bool(config.diffusers.cuda) or config.main_gpu not in (None, "")
    if torch.cuda.is_available():
        index = 0
        if config.main_gpu not in (None, ""):
            try:
                index = int(str(config.main_gpu).removeprefix("cuda:"))
            except ValueError:
                raise ValueError(f"main_gpu {config.main_gpu!r} is not a GPU index") from None
        return f"cuda:{index}"
    if wants_cuda:
        raise RuntimeError(f"diffusers.cuda / main_gpu ask for a GPU but torch {torch.__version__} sees no CUDA device")
    return "cpu"


def resolve_source(config: Any, model_path: str | None) -> tuple[str, bool]:
    """(what to load, is it local): a folder or file in the models path, else ``parameters.model`` as a hub id."""
    if model_path and Path(model_path).exists():
        return model_path, True
    raw = config.parameters.model
    if not raw:
        raise ValueError(f"model {config.name!r} has no parameters.model (a diffusers folder, a single file or a hub id)")
    return raw, False


def load_pipeline(config: Any, source: str, local: bool, dtype: Any) -> Any:
    pipeline_type = config.diffusers.pipeline_type
    is_file = local and Path(source).is_file()
    if is_file:
        cls = getattr(diffusers, pipeline_type or "StableDiffusionPipeline")
        if not hasattr(cls, "from_single_file"):
            raise ValueError(f"pipeline_type {cls.__name__} cannot load a single checkpoint file; set diffusers.pipeline_type "
                             "to the model's pipeline, e.g. StableDiffusionPipeline or StableDiffusionXLPipeline")
        load = cls.from_single_file
    else:
        cls = getattr(diffusers, pipeline_type or "AutoPipelineForText2Image")
        load = cls.from_pretrained
    kwargs: dict[str, Any] = {"torch_dtype": dtype}
    if local and not is_file:
        kwargs["local_files_only"] = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch_dtype -> dtype rename in newer diffusers
            return load(source, **kwargs)
    except (OSError, ValueError, EnvironmentError) as exc:
        if local:
            raise RuntimeError(f"cannot load {cls.__name__} from {source}: {exc}") from exc
        raise RuntimeError(f"{source!r} is not a file or folder in the models path, and fetching it from the Hugging Face "
                           f"hub failed (offline? set HF_HUB_OFFLINE=0 and check the id): {exc}") from exc


def pipeline_limits(pipe: Any, max_size: int) -> ImageLimits:
    vae_factor = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    multiple = vae_factor * (2 if getattr(pipe, "transformer", None) is not None else 1)  # packed/patched latents
    multiple = max(8, multiple)
    default = getattr(pipe, "default_sample_size", None)
    net = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if default is None and net is not None:
        default = getattr(net.config, "sample_size", None)
    side = int(default) * vae_factor if isinstance(default, int) else 512
    side = max(multiple, min(max_size, side - side % multiple))
    return ImageLimits(multiple=multiple, min_size=multiple, max_size=max_size, default_width=side, default_height=side)


def _default(pipe: Any, name: str) -> Any:
    import inspect

    param = inspect.signature(pipe.__call__).parameters.get(name)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def to_png(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class DiffusersModel:
    def __init__(self, config: Any, pipe: Any, img_pipe: Any, device: str, options: dict[str, Any]) -> None:
        self.config = config
        self.name = config.name
        self.pipe = pipe
        self.img_pipe = img_pipe
        self.device = device
        self.queue_size = int(options.get("queue_size", 4))
        self.limits = pipeline_limits(pipe, int(options.get("max_size", 2048)))
        self._run_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._inflight = 0

    @classmethod
    def load(cls, config: Any, model_path: str | None, options: dict[str, Any]) -> DiffusersModel:
        started = time.monotonic()
        if config.threads:
            torch.set_num_threads(config.threads)
        device = pick_device(config)
        dtype = torch.float16 if config.f16 and device.startswith("cuda") else torch.float32
        if config.f16 and not device.startswith("cuda"):
            log.warning("model %r: f16 applies on CUDA only; running in float32 on %s", config.name, device)
        source, local = resolve_source(config, model_path)
        pipe = load_pipeline(config, source, local, dtype)
        if config.diffusers.scheduler_type:
            pipe.scheduler = make_scheduler(config.diffusers.scheduler_type, pipe.scheduler)
        text_pipe, img_pipe = pipe, None
        if "Img2Img" in type(pipe).__name__:
            img_pipe = pipe
            text_pipe = diffusers.AutoPipelineForText2Image.from_pipe(pipe)
        elif config.diffusers.img2img:
            try:
                img_pipe = diffusers.AutoPipelineForImage2Image.from_pipe(pipe)
            except Exception as exc:  # noqa: BLE001 - no image-to-image counterpart
                raise ValueError(f"diffusers.img2img: {type(pipe).__name__} has no image-to-image pipeline: {exc}") from exc
        for p in filter(None, (text_pipe, img_pipe)):
            p.set_progress_bar_config(disable=True)
        if config.low_vram:
            if device.startswith("cuda"):
                text_pipe.enable_model_cpu_offload(device=device)
            else:
                log.warning("model %r: low_vram (model CPU offload) applies on CUDA only; the model stays on %s", config.name, device)
                text_pipe.to(device)
        else:
            text_pipe.to(device)
        if options.get("attention_slicing"):
            text_pipe.enable_attention_slicing()
        if options.get("vae_tiling") and hasattr(text_pipe, "vae"):
            text_pipe.vae.enable_tiling()
        model = cls(config, text_pipe, img_pipe, device, options)
        log.info("model %r: %s (%s) on %s, %s, scheduler %s, img2img %s, loaded in %.1fs", config.name, type(text_pipe).__name__,
                 source, device, str(dtype).removeprefix("torch."), type(text_pipe.scheduler).__name__,
                 "yes" if img_pipe is not None else "no", time.monotonic() - started)
        return model

    def info(self) -> ModelInfo:
        return ModelInfo(backend="diffusers", architecture=type(self.pipe).__name__, image=self.limits,
                         img2img=self.img_pipe is not None,
                         extra={"device": self.device, "scheduler": type(self.pipe.scheduler).__name__})

    def generate_image(self, request: ImageRequest, cancelled: Callable[[], bool]) -> ImageResult:
        with self._count_lock:
            if self._inflight >= 1 + self.queue_size:
                raise QueueFull(self.name)
            self._inflight += 1
        try:
            with self._run_lock:
                if cancelled():
                    return ImageResult(finish_reason="cancelled")
                return self._generate(request, cancelled)
        finally:
            with self._count_lock:
                self._inflight -= 1

    def _call_args(self, pipe: Any, request: ImageRequest, seed: int) -> dict[str, Any]:
        import inspect

        params = inspect.signature(pipe.__call__).parameters
        kwargs: dict[str, Any] = {"prompt": request.prompt, "num_images_per_prompt": request.n, "output_type": "pil",
                                  "generator": [torch.Generator("cpu").manual_seed(seed + i) for i in range(request.n)]}
        if request.negative_prompt:
            if "negative_prompt" not in params:
                raise ValueError(f"model {self.name!r} ({type(pipe).__name__}) takes no negative prompt (the text after '|')")
            kwargs["negative_prompt"] = request.negative_prompt
        if request.steps is not None:
            # A scheduler indexes its training timesteps: more inference steps than it has (less its offset) crash it.
            sched = getattr(getattr(pipe, "scheduler", None), "config", None)
            most = int(getattr(sched, "num_train_timesteps", 0) or 0) - int(getattr(sched, "steps_offset", 0) or 0)
            if most > 0 and request.steps > most:
                raise ValueError(f"step {request.steps} is more than model {self.name!r}'s scheduler "
                                 f"({type(pipe.scheduler).__name__}) can take: at most {most}")
            kwargs["num_inference_steps"] = request.steps
        if request.guidance_scale is not None:
            kwargs["guidance_scale"] = request.guidance_scale
        if self.config.diffusers.clip_skip:
            if "clip_skip" not in params:
                raise ValueError(f"model {self.name!r} ({type(pipe).__name__}) does not support diffusers.clip_skip")
            kwargs["clip_skip"] = self.config.diffusers.clip_skip
        if request.init_image is not None:
            kwargs["image"] = self._input_image(request)
            if request.strength is not None:
                kwargs["strength"] = request.strength
        else:
            kwargs["width"], kwargs["height"] = request.width, request.height
        return kwargs

    def _input_image(self, request: ImageRequest) -> Any:
        from PIL import Image, UnidentifiedImageError

        try:
            image = Image.open(io.BytesIO(base64.b64decode(request.init_image or ""))).convert("RGB")
        except (UnidentifiedImageError, ValueError, OSError) as exc:
            raise ValueError(f"the input image is not a readable PNG/JPEG/WebP image: {exc}") from None
        lim = self.limits
        width, height = request.width, request.height
        if width is None or height is None:  # keep the input's size, snapped to what the model can make
            width = min(lim.max_size, max(lim.min_size, image.width - image.width % lim.multiple))
            height = min(lim.max_size, max(lim.min_size, image.height - image.height % lim.multiple))
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.LANCZOS)
        return image

    def _generate(self, request: ImageRequest, cancelled: Callable[[], bool]) -> ImageResult:
        pipe = self.pipe
        if request.init_image is not None:
            if self.img_pipe is None:
                raise NotImplementedError(f"model {self.name!r} does not do image-to-image; set diffusers.img2img: true")
            pipe = self.img_pipe
        seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
        kwargs = self._call_args(pipe, request, seed)
        steps = kwargs.get("num_inference_steps") or _default(pipe, "num_inference_steps")
        steps_done = 0

        def on_step_end(_pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            nonlocal steps_done
            steps_done = step + 1
            if cancelled():
                raise Cancelled
            return tensors

        kwargs["callback_on_step_end"] = on_step_end
        started = time.monotonic()
        try:
            with torch.inference_mode():
                output = pipe(**kwargs)
        except Cancelled:
            log.info("model %r: generation cancelled after %d step(s)", self.name, steps_done)
            return ImageResult(finish_reason="cancelled", steps=steps_done, seed=seed)
        images = [to_png(img) for img in output.images]
        log.info("model %r: %d image(s) %sx%s, %s steps (%d denoising calls), seed %d in %.2fs", self.name, len(images),
                 output.images[0].width, output.images[0].height, steps, steps_done, seed, time.monotonic() - started)
        return ImageResult(images=images, seed=seed, steps=steps if isinstance(steps, int) else steps_done)

    def close(self) -> None:
        self.pipe = self.img_pipe = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
