"""The server around the backends: probes, broken configs, workers' lives, API keys, CLI.

Uses the test-only ``fake_backend`` plugin (loaded through ``LOCALAI_PLUGINS``) for core logic.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from localai.testing import ServerProcess, worker_pids
from serving import wait_for

TESTS_DIR = Path(__file__).parent
# No backend environments (the test run may export LOCALAI_BACKENDS_PATH with vllm installed): these tests pin what a
# server with only the in-process plugins says about a backend that cannot run.
NO_ENVIRONMENTS = tempfile.mkdtemp(prefix="localai-no-backends-")
FAKE_ENV = {"LOCALAI_PLUGINS": "fake_backend", "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
            "LOCALAI_BACKENDS_PATH": NO_ENVIRONMENTS}

FAKE_MODELS = {
    "echo.yaml": "name: echo\nbackend: fake\n",
    "slow.yaml": "name: slow\nbackend: Fake_Backend\noptions: ['delay:0.2']\n",
    "broken.yaml": "name: broken\ncontext_size: [not, an, int\n",
    "typo.yaml": "name: typo\nbackend: fake\ncontext_size: huge\n",
    "missing.yaml": "name: wants-vllm\nbackend: vllm\n",
}


def models(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def fake_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    log = tmp_path / "backend.log"
    with ServerProcess(models(tmp_path, FAKE_MODELS), env={**FAKE_ENV, "FAKE_BACKEND_LOG": str(log)}) as srv:
        srv.backend_log = log  # type: ignore[attr-defined]
        yield srv


def complete(url: str, model: str, prompt: str, **extra: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/completions", json={"model": model, "prompt": prompt, **extra}, timeout=30)


def test_broken_configs_do_not_stop_the_server(fake_server: ServerProcess) -> None:
    assert httpx.get(fake_server.url + "/readyz").json()["models"] == ["echo", "slow"]
    ids = [m["id"] for m in httpx.get(fake_server.url + "/v1/models").json()["data"]]
    assert ids == ["echo", "slow"]
    log = fake_server.log()
    assert "broken.yaml" in log and "YAML syntax error" in log
    assert "typo.yaml" in log and "context_size" in log
    assert "localai backends install vllm" in log
    r = complete(fake_server.url, "wants-vllm", "hi")
    assert r.status_code == 500 and "localai backends install vllm" in r.json()["error"]["message"]


def test_routes_answer_with_and_without_v1(fake_server: ServerProcess) -> None:
    a = complete(fake_server.url, "echo", "one two three").json()
    b = httpx.post(fake_server.url + "/completions", json={"model": "echo", "prompt": "one two three"}).json()
    assert a["choices"][0]["text"] == b["choices"][0]["text"] == "one two three "


def test_readyz_is_503_without_usable_models(tmp_path: Path) -> None:
    with ServerProcess(models(tmp_path, {"broken.yaml": "name: [x\n"}), env=FAKE_ENV) as srv:
        assert httpx.get(srv.url + "/healthz").status_code == 200
        assert httpx.get(srv.url + "/readyz").status_code == 503


def test_client_disconnect_cancels_generation_in_the_worker(fake_server: ServerProcess) -> None:
    prompt = " ".join(f"w{i}" for i in range(40))
    with httpx.stream("POST", fake_server.url + "/v1/completions",
                      json={"model": "slow", "prompt": prompt, "stream": True, "max_tokens": 40}, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                break  # got one token; hang up
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if "cancelled slow" in (fake_server.backend_log.read_text() if fake_server.backend_log.exists() else ""):  # type: ignore[attr-defined]
            break
        time.sleep(0.1)
    assert "cancelled slow after" in fake_server.backend_log.read_text()  # type: ignore[attr-defined]
    assert complete(fake_server.url, "slow", "still alive").json()["choices"][0]["text"] == "still alive "


@pytest.mark.parametrize("stream", [True, False])
def test_a_finished_generation_is_not_reported_cancelled(fake_server: ServerProcess, stream: bool) -> None:
    """Regression: the server closed every stream after its finish chunk but before the worker's end message,
    so each completed request sent the worker a cancel and logged "cancelled before its end (client closed the
    stream)", which is how a real cancellation is recognised in the log."""
    for _ in range(3):
        r = httpx.post(fake_server.url + "/v1/completions", timeout=30,
                       json={"model": "echo", "prompt": "one two three", "stream": stream})
        assert r.status_code == 200 and "one" in r.text
    time.sleep(0.5)  # let the worker's log reach the server's
    log = fake_server.log()
    assert "cancelled before its end" not in log
    assert "cancelled: its client went away" not in log


LONG = " ".join(f"w{i}" for i in range(40))
PLAIN_REQUESTS = {
    "completions": ("/v1/completions", {"prompt": LONG}),
    "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": LONG}]}),
    "messages": ("/v1/messages", {"messages": [{"role": "user", "content": LONG}]}),
    "responses": ("/v1/responses", {"input": LONG, "store": False, "max_output_tokens": 40}),
}


@pytest.mark.parametrize("api", list(PLAIN_REQUESTS))
def test_abandoned_plain_request_stops_generating(fake_server: ServerProcess, api: str) -> None:
    """A non-streamed request whose client gives up is cancelled in the worker, on every API."""
    path, body = PLAIN_REQUESTS[api]
    with pytest.raises(httpx.TimeoutException):  # 40 words at 0.2 s each: the client gives up after 1 s
        httpx.post(fake_server.url + path, json={"model": "slow", **({"max_tokens": 40} | body)}, timeout=1.0)
    log = fake_server.backend_log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "cancelled slow" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.05)
    line = next(ln for ln in log.read_text().splitlines() if ln.startswith("cancelled slow"))
    assert int(line.rsplit(" ", 1)[1]) < 20, line  # stopped long before its 40 tokens
    assert "client disconnected before the response" in fake_server.log()
    assert "cancelled: its client went away" in fake_server.log()
    assert complete(fake_server.url, "slow", "still alive").json()["choices"][0]["text"] == "still alive "


def test_a_load_failure_carries_the_root_cause_the_worker_printed(tmp_path: Path) -> None:
    """An engine that fails in a process of its own (vLLM's engine core) leaves the reason only in the log: the
    client's 500 quotes it, and the log still has the worker's output."""
    files = {"eng.yaml": "name: eng\nbackend: fake\nfake_engine_failure: platform cpu does not support ray\n"}
    with ServerProcess(models(tmp_path, files), env=FAKE_ENV) as srv:
        r = complete(srv.url, "eng", "x")
        assert r.status_code == 500, r.text
        err = r.json()["error"]
        assert err["code"] == "model_load_failed"
        assert "engine core initialization failed" in err["message"]
        assert "root cause in the worker's log: ValueError: platform cpu does not support ray" in err["message"]
        assert "File x" in srv.log()  # relayed to the server's log as before


def test_killed_worker_fails_its_request_clearly_and_the_next_reloads(fake_server: ServerProcess) -> None:
    assert complete(fake_server.url, "echo", "warm up").status_code == 200  # other model, unaffected later
    import threading

    result: dict[str, httpx.Response] = {}
    t = threading.Thread(target=lambda: result.setdefault("r", complete(fake_server.url, "slow", "a b c d e f g h i j")))
    t.start()

    def busy_slow() -> dict | None:  # the slow model's worker, once the request is running in it
        rows = httpx.get(fake_server.url + "/backend/monitor", timeout=10).json()["models"]
        return next((r for r in rows if r["model"] == "slow" and r["in_flight"] >= 1), None)

    row = wait_for(busy_slow, 30)
    assert row, "the request never reached the slow model's worker"
    assert row["pid"] in worker_pids(fake_server.proc.pid)  # type: ignore[union-attr]
    os.kill(row["pid"], signal.SIGKILL)
    t.join(30)
    r = result["r"]
    assert r.status_code == 500
    err = r.json()["error"]
    assert "'slow'" in err["message"] and "SIGKILL" in err["message"] and err["code"] == "worker_died"
    assert complete(fake_server.url, "slow", "back again").json()["choices"][0]["text"] == "back again "
    assert complete(fake_server.url, "echo", "still here").json()["choices"][0]["text"] == "still here "


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_workers_never_outlive_the_server(tmp_path: Path, sig: int) -> None:
    srv = ServerProcess(models(tmp_path, FAKE_MODELS), env=FAKE_ENV).start()
    try:
        complete(srv.url, "echo", "x")
        complete(srv.url, "slow", "y")
        pids = worker_pids(srv.proc.pid)  # type: ignore[union-attr]
        assert len(pids) == 2
    finally:
        srv.stop(sig)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() and _not_zombie(p) for p in pids):
        time.sleep(0.1)
    assert not [p for p in pids if Path(f"/proc/{p}").exists() and _not_zombie(p)]


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_unknown_model_is_404_and_bad_json_is_400(fake_server: ServerProcess) -> None:
    r = complete(fake_server.url, "nope", "x")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found" and r.json()["error"]["param"] == "model"
    r = httpx.post(fake_server.url + "/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(fake_server.url + "/v1/completions", json={"model": "echo", "prompt": "x", "temperature": "hot"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"


def test_api_keys(tmp_path: Path) -> None:
    with ServerProcess(models(tmp_path, {"echo.yaml": "name: echo\nbackend: fake\n"}),
                       env={**FAKE_ENV, "LOCALAI_API_KEY": "k1, k2"}) as srv:
        assert httpx.get(srv.url + "/healthz").status_code == 200
        assert httpx.get(srv.url + "/readyz").status_code == 200
        r = httpx.get(srv.url + "/v1/models")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(srv.url + "/v1/models", headers={"Authorization": "Bearer k2"}).status_code == 200
        assert httpx.get(srv.url + "/v1/models", headers={"x-api-key": "k1"}).status_code == 200
        assert httpx.get(srv.url + "/v1/models", headers={"Authorization": "Bearer k3"}).status_code == 401
        r = httpx.post(srv.url + "/v1/messages", json={})
        assert r.status_code == 401 and r.json()["type"] == "error" and r.json()["error"]["type"] == "authentication_error"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "localai.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "LOCALAI_BACKENDS_PATH": NO_ENVIRONMENTS, **(env or {})}, timeout=60)


def test_cli_backends_lists_llama_cpp_with_alias_and_what_is_missing() -> None:
    out = cli("backends").stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("llama-cpp"))
    assert "llama" in line and "localai-llama-cpp" in line and "available" in line
    vllm = next(ln for ln in out.splitlines() if ln.startswith("vllm "))  # registered here without its engine
    assert "unavailable" in vllm and "localai backends install vllm" in vllm
    assert "localai@transformers" in out  # the backend gallery


def test_cli_models_shows_problems(tmp_path: Path) -> None:
    r = cli("models", "--models-path", str(models(tmp_path, FAKE_MODELS)), env=FAKE_ENV)
    assert r.returncode == 1
    assert "echo" in r.stdout and "localai backends install vllm" in r.stdout and "broken.yaml" in r.stdout


def test_help_imports_no_engine() -> None:
    code = ("import sys; from localai import cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "cli.main(['backends'])\n"
            "heavy = [m for m in ('llama_cpp', 'torch', 'vllm', 'openvino', 'ik_llama_cpp', 'transformers', 'diffusers') if m in sys.modules]\n"
            "print(json.dumps(heavy))")
    r = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []
    assert "run" in cli("--help").stdout and "--models-path" in cli("run", "--help").stdout


def test_worker_interpreter_can_differ_per_backend(tmp_path: Path) -> None:
    """LOCALAI_PYTHON_<BACKEND> launches that backend's workers with another interpreter."""
    marker = tmp_path / "launched"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f"#!/bin/sh\necho \"$@\" > {marker}\nexec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    with ServerProcess(models(tmp_path, {"echo.yaml": "name: echo\nbackend: fake\n"}),
                       env={**FAKE_ENV, "LOCALAI_PYTHON_FAKE": str(wrapper)}) as srv:
        assert complete(srv.url, "echo", "via wrapper").json()["choices"][0]["text"] == "via wrapper "
    assert marker.read_text().strip() == "-m localai.worker"


def test_errors_keep_the_connection_usable(fake_server: ServerProcess) -> None:
    """SDKs reuse keep-alive connections: an error response must not drop the connection."""
    with httpx.Client(base_url=fake_server.url, timeout=30) as client:
        for _ in range(3):
            assert client.post("/v1/completions", json={"model": "wants-vllm", "prompt": "x"}).status_code == 500
            assert client.post("/v1/completions", json={"model": "nope", "prompt": "x"}).status_code == 404
        assert client.post("/v1/completions", json={"model": "echo", "prompt": "ok"}).json()["choices"][0]["text"] == "ok "
