"""A throw-away image backend for the image routes' core tests (``LOCALAI_PLUGINS=fake_image_backend``).

Each "image" is a solid PNG whose colour hashes the prompt, negative prompt, seed and steps, so tests can see
which inputs reached the backend. ``options: [delay:S]`` sleeps S seconds per step (checking ``cancelled``),
``options: [queue_size:N]`` bounds the waiting requests (429 beyond). What happened goes to
``$FAKE_BACKEND_LOG``. Never a stand-in for the diffusers backend's own tests.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from fake_plugin_common import log, number_options
from localai import hookimpl
from localai.errors import QueueFull
from localai.types import ImageLimits, ImageRequest, ImageResult, ModelInfo


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


class FakeImageModel:
    def __init__(self, config: Any, options: dict[str, Any]) -> None:
        self.name = config.name
        self.img2img = bool(config.diffusers.img2img)
        self.delay = float(options.get("delay", 0.0))
        self.queue_size = int(options.get("queue_size", 8))
        self.lock = threading.Lock()
        self.waiting = 0
        self.count = threading.Lock()

    def info(self) -> ModelInfo:
        return ModelInfo(backend="fake-image", architecture="fake", image=ImageLimits(max_size=1024, default_width=64, default_height=64),
                         img2img=self.img2img)

    def generate_image(self, request: ImageRequest, cancelled: Callable[[], bool]) -> ImageResult:
        with self.count:
            if self.waiting > self.queue_size:
                raise QueueFull(self.name)
            self.waiting += 1
        try:
            with self.lock:
                return self._run(request, cancelled)
        finally:
            with self.count:
                self.waiting -= 1

    def _run(self, request: ImageRequest, cancelled: Callable[[], bool]) -> ImageResult:
        steps = request.steps or 4
        seed = request.seed if request.seed is not None else 1234
        for step in range(steps):
            if cancelled():
                log(f"cancelled {request.model} at step {step}/{steps}")
                return ImageResult(finish_reason="cancelled", steps=step, seed=seed)
            time.sleep(self.delay)
        if request.init_image is not None:
            base64.b64decode(request.init_image, validate=True)
        width, height = request.width or 32, request.height or 32
        images = []
        for i in range(request.n):
            key = f"{request.prompt}|{request.negative_prompt}|{seed + i}|{steps}|{request.init_image is not None}"
            rgb = tuple(hashlib.sha256(key.encode()).digest()[:3])
            images.append(base64.b64encode(png(width, height, rgb)).decode())  # type: ignore[arg-type]
        log(f"generated {request.model} n={request.n} {width}x{height} steps={steps} prompt={request.prompt!r} "
            f"negative={request.negative_prompt!r} seed={request.seed} guidance={request.guidance_scale}")
        return ImageResult(images=images, steps=steps, seed=seed)


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register("fake-image", capabilities=("image",), description="solid-colour image backend for tests")


@hookimpl
def parse_options(backend: str, options: list[str], config: Any) -> dict[str, Any] | None:
    if backend != "fake-image":
        return None
    return number_options(options, ("delay", "queue_size"))


@hookimpl
def load_model(backend: str, config: Any, model_path: str | None, options: dict[str, Any]) -> Any:
    if backend != "fake-image":
        return None
    return FakeImageModel(config, options)


@hookimpl
def generate_image(model: Any, request: ImageRequest, cancelled: Callable[[], bool]) -> ImageResult | None:
    return model.generate_image(request, cancelled) if isinstance(model, FakeImageModel) else None
