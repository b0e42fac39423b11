"""Images in prompts through llama.cpp's multimodal library (mtmd) and the YAML's ``mmproj:`` projector.

:class:`Projector` splits a rendered prompt at its image placeholders into text tokens and image chunks
(``mtmd_tokenize``). The scheduler keeps one list of ints per prompt: text tokens as they are, and each image's
positions as one negative key derived from the image's sha256, so prefix matching, the slot KV and the RAM prompt
cache never take one image's KV for another's, and an image is a run of equal keys that is fed whole
(``mtmd_helper_eval_chunk_single``: the vision encoder, then its embeddings into the slot's sequence).
"""

from __future__ import annotations

import ctypes
import secrets
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localai.types import ImageData


def image_key(sha256: str) -> int:
    """The negative int standing for every position of one image in a token list (never a token id)."""
    return -1 - int(sha256[:15], 16)


@dataclass
class Media:
    """A prompt's image chunks by key; owns the C chunk list until the job is gone."""

    chunks: dict[int, Any] = field(default_factory=dict)  # image key -> mtmd_input_chunk pointer
    n_tokens: dict[int, int] = field(default_factory=dict)  # image key -> embeddings it decodes (usage counts these)
    n_pos: dict[int, int] = field(default_factory=dict)  # image key -> positions it takes in the sequence


def prompt_usage(tokens: list[int], media: Any) -> int:
    """Prompt tokens as usage reports them: text tokens plus each image's embeddings (not its positions)."""
    if media is None:
        return len(tokens)
    images = sum(tokens.count(k) // media.n_pos[k] * media.n_tokens[k] for k in media.n_pos)
    return sum(1 for t in tokens if t >= 0) + images


class Projector:
    """The mtmd context over one loaded model: tokenizes prompts with images, evaluates image chunks."""

    def __init__(self, llm: Any, path: str, n_threads: int, flash_attn: bool) -> None:
        import llama_cpp.mtmd_cpp as mtmd

        if not Path(path).is_file():
            raise FileNotFoundError(f"mmproj file {path} does not exist")
        self.mtmd = mtmd
        # A marker no client can type by accident: the core writes it where each image stands (image_placeholder).
        self.marker = f"<__localai_image_{secrets.token_hex(6)}__>"
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.n_threads = n_threads
        params.media_marker = self.marker.encode()
        params.flash_attn_type = 1 if flash_attn else 0
        params.warmup = False
        self._marker_bytes = params.media_marker  # ctypes keeps only the pointer
        self.ctx = mtmd.mtmd_init_from_file(path.encode(), llm._model.model, params)
        if not self.ctx:
            raise ValueError(f"mmproj {path} could not be loaded for this model (llama.cpp's log says why): it must be "
                             "the projector converted for this model's architecture")
        self._finalizer = weakref.finalize(self, mtmd.mtmd_free, self.ctx)
        if not mtmd.mtmd_support_vision(self.ctx):
            self.close()
            raise ValueError(f"mmproj {path} has no vision encoder (an audio-only projector?)")

    def close(self) -> None:
        self._finalizer()

    def tokenize(self, prompt: str, images: list[ImageData], add_special: bool) -> tuple[list[int], Media]:
        """The prompt's token list (images as runs of their key) and its image chunks."""
        mtmd = self.mtmd
        bitmaps = [self._bitmap(img) for img in images]
        chunks = mtmd.mtmd_input_chunks_init()
        media = Media()
        weakref.finalize(media, mtmd.mtmd_input_chunks_free, chunks)  # the image chunks live as long as the job
        try:
            data = prompt.encode("utf-8")
            text = mtmd.mtmd_input_text(text=data, add_special=add_special, parse_special=True)
            if "text_len" in dict(mtmd.mtmd_input_text._fields_):  # newer mtmd.h (0.3.36); the turboquant fork's has none
                text.text_len = len(data)
            array = (mtmd.mtmd_bitmap_p_ctypes * max(1, len(bitmaps)))(*bitmaps)
            rc = mtmd.mtmd_tokenize(self.ctx, chunks, ctypes.byref(text), array, len(bitmaps))
            if rc != 0:
                raise ValueError(f"llama.cpp could not prepare the images (mtmd_tokenize returned {rc})")
            tokens: list[int] = []
            n_image = 0
            for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                chunk = mtmd.mtmd_input_chunks_get(chunks, i)
                if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    n = ctypes.c_size_t(0)
                    ptr = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                    tokens.extend(ptr[k] for k in range(n.value))
                    continue
                key = image_key(images[n_image].sha256)
                n_image += 1
                if key not in media.chunks:
                    media.chunks[key] = chunk
                    media.n_tokens[key] = int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))
                    media.n_pos[key] = int(mtmd.mtmd_input_chunk_get_n_pos(chunk))
                tokens.extend([key] * media.n_pos[key])
            return tokens, media
        finally:
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)

    def _bitmap(self, image: ImageData) -> Any:
        """Decoded with Pillow (any format the API accepts; EXIF rotation applied) into an RGB bitmap."""
        rgb = image.rgb()
        raw = rgb.tobytes()
        buf = (ctypes.c_uint8 * len(raw)).from_buffer_copy(raw)
        bitmap = self.mtmd.mtmd_bitmap_init(rgb.width, rgb.height, buf)
        if not bitmap:
            raise ValueError("llama.cpp could not take the image")
        self.mtmd.mtmd_bitmap_set_id(bitmap, image.sha256.encode())
        return bitmap

    def evaluate(self, lctx: Any, chunk: Any, n_past: int, seq: int, n_batch: int) -> int:
        """Encode the image and decode its embeddings into ``seq`` from ``n_past``; the next position."""
        new_n_past = ctypes.c_int32(0)
        rc = self.mtmd.mtmd_helper_eval_chunk_single(self.ctx, lctx, chunk, n_past, seq, n_batch, False,
                                                     ctypes.byref(new_n_past))
        if rc != 0:
            raise RuntimeError(f"llama.cpp failed to evaluate an image (mtmd_helper_eval_chunk_single returned {rc})")
        return int(new_n_past.value)
