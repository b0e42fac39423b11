"""A real server in a subprocess, its models folder, and its worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from localai.testing.models import GGUF_NAME, default_gguf


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
