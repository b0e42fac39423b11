"""Throw-away PostgreSQL and HAProxy servers for replica tests and benches, on loopback ports, in temporary folders.

Both are the distribution's own binaries (Debian's ``postgresql`` and ``haproxy`` packages, which
``scripts/test.sh`` installs when missing), started as child processes and stopped (and their folders removed) on
exit, so nothing is left running.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

from localai.testing.processes import free_port


class _Service:
    """A context manager over ``start``/``stop``: a start that fails half-way still stops and cleans up."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server binaries (``initdb``, ``pg_ctl``), newest version first."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]), reverse=True)
    return Path(versions[0]).parent if versions else None


class PostgresServer(_Service):
    """A PostgreSQL cluster of its own: ``initdb`` in a temporary folder, ``postgres`` on a free loopback port.

    As root (PostgreSQL refuses to run as root) the cluster belongs to the ``postgres`` user, which the Debian
    package creates. :attr:`url` is what ``--database-url`` takes; :meth:`restart` and :meth:`stop` simulate an outage.
    """

    def __init__(self) -> None:
        found = postgres_bin()
        if found is None:
            raise FileNotFoundError("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: "
                                    "apt-get install postgresql")
        self.bin: Path = found
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="localai-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.user: str | None = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://localai:localai@127.0.0.1:{self.port}/localai"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresServer:
        if self.user:
            record = pwd.getpwnam(self.user)
            os.chown(self.folder, record.pw_uid, record.pw_gid)
        password = self.folder / "password"
        password.write_text("localai\n")
        if self.user:
            os.chown(password, pwd.getpwnam(self.user).pw_uid, -1)
        self._run("initdb", "-D", str(self.data), "-U", "localai", "--pwfile", str(password), "-A", "scram-sha-256",
                  "--no-sync", "-E", "UTF8")
        self.up()
        env = dict(os.environ, PGPASSWORD="localai")
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "localai", "localai"],
                       check=True, capture_output=True, env=env, timeout=60)
        return self

    def up(self) -> None:
        """Start the server (again) on the same port and data."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def down(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self, outage: float = 0.0) -> None:
        self.down()
        time.sleep(outage)
        self.up()

    def stop(self) -> None:
        self.down("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)



class HAProxy(_Service):
    """HAProxy in front of ``backends`` (``host:port``), round-robin, HTTP mode, on a free loopback port.

    ``/healthz`` is its health check; a backend that fails it (or refuses connections) is taken out until it passes.
    A request that could not be sent to one backend is re-dispatched to another (``option redispatch``).
    """

    def __init__(self, backends: list[str]) -> None:
        binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
        if binary is None:
            raise FileNotFoundError("HAProxy is not installed: apt-get install haproxy")
        self.binary: str = binary
        self.backends = backends
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="localai-haproxy-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        servers = "\n".join(f"    server r{i} {b} check inter 500ms fall 2 rise 2" for i, b in enumerate(self.backends))
        return f"""global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 600s
    timeout server 600s
    retries 2
    option redispatch
    option http-server-close
frontend api
    bind 127.0.0.1:{self.port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /healthz
{servers}
"""

    def start(self) -> HAProxy:
        cfg = self.folder / "haproxy.cfg"
        cfg.write_text(self.config())
        self.proc = subprocess.Popen([self.binary, "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "haproxy.log", "wb"), start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited: {(self.folder / 'haproxy.log').read_text()}")
            try:
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("haproxy did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

