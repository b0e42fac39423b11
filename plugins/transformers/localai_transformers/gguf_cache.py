"""A ``.gguf`` served by transformers is dequantized into an HF checkpoint once, not on every load.

transformers converts a GGUF tensor by tensor in Python (82 s for Gemma 3 270M on a 2-core machine) before the
first request can be answered. The converted model and tokenizer are saved under the localai cache, keyed by the
file's sha256, the transformers version (its conversion may change) and the dtype, so every later load of the same
file reads safetensors in seconds. A cache entry that fails to load is removed and the GGUF converted again.
Worker-side: imported at load.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from localai.paths import cache_root, sha256_of

from localai_transformers.source import Source

log = logging.getLogger("localai_transformers")

DONE = ".localai-converted"  # written last: a folder without it is an interrupted save


def entry(source: Source, dtype: Any) -> Path:
    """The cache folder for this GGUF's content, this transformers version and this dtype."""
    import transformers

    started = time.monotonic()
    digest = sha256_of(Path(source.path, source.gguf_file or ""))
    log.debug("sha256 of %s in %.1f s", source.describe(), time.monotonic() - started)
    name = f"{digest[:24]}-transformers{transformers.__version__}-{str(dtype).removeprefix('torch.')}"
    return cache_root() / "transformers-gguf" / name


def cached(folder: Path) -> bool:
    return (folder / DONE).is_file()


def store(folder: Path, model: Any, tokenizer: Any, source: Source) -> None:
    """Save the converted model and tokenizer; written to a sibling folder and renamed, so a reader never sees half
    a checkpoint and two workers converting the same file at once both end with one whole entry."""
    started = time.monotonic()
    folder.parent.mkdir(parents=True, exist_ok=True)
    need = sum(p.numel() * p.element_size() for p in model.parameters()) + (256 << 20)  # + tokenizer and slack
    free = shutil.disk_usage(folder.parent).free
    if free < need:
        log.warning("not caching the conversion of %s: it needs about %.1f GB and %s has %.1f GB free (the next "
                    "load converts the GGUF again; gguf_cache:false stops trying)", source.describe(), need / 1e9,
                    folder.parent, free / 1e9)
        return
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    # The weights are dequantized already, but transformers still tags the model as GGUF-quantized, which
    # save_pretrained refuses: the tag is lifted for the save (the checkpoint is plain safetensors) and put back.
    quantizer, qconfig = getattr(model, "hf_quantizer", None), getattr(model.config, "quantization_config", None)
    try:
        model.hf_quantizer = None
        if qconfig is not None:
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / DONE).write_text(f"{source.describe()}\n")
        try:
            os.rename(tmp, folder)
        except OSError:  # another worker stored it first (the rename target exists): theirs is as good
            if not cached(folder):
                raise
    except Exception as exc:  # noqa: BLE001 - a full disk or a model that will not save costs the next load a
        # conversion, never this load
        log.warning("could not cache the conversion of %s in %s: %s: %s", source.describe(), folder,
                    type(exc).__name__, exc)
    finally:
        model.hf_quantizer = quantizer
        if qconfig is not None:
            model.config.quantization_config = qconfig
        shutil.rmtree(tmp, ignore_errors=True)
    if cached(folder):
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        log.info("cached the conversion of %s in %s (%.0f MB, %.1f s); later loads of this file read it",
                 source.describe(), folder, size / 1e6, time.monotonic() - started)


def discard(folder: Path, exc: BaseException) -> None:
    log.warning("the cached conversion in %s does not load (%s: %s); removing it and converting the GGUF again",
                folder, type(exc).__name__, exc)
    shutil.rmtree(folder, ignore_errors=True)
