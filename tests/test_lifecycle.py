"""Model lifecycle: admin routes, idle unload and keep_alive, busy watchdog, active-model limit, memory check, preload.

Runs the fake backend (core logic only); the worker pids and ``unload_model`` calls are checked for real.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from localai.testing import ServerProcess
from serving import FAKE_ENV, complete, delta, models, monitor, scrape, wait_for


def server(tmp_path: Path, files: dict[str, str], *args: str, log: bool = True) -> ServerProcess:
    env = dict(FAKE_ENV)
    if log:
        env["FAKE_BACKEND_LOG"] = str(tmp_path / "backend.log")
    return ServerProcess(models(tmp_path, files), env=env, args=list(args))


def backend_log(tmp_path: Path) -> str:
    p = tmp_path / "backend.log"
    return p.read_text() if p.exists() else ""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_monitor_load_and_shutdown_routes(tmp_path: Path) -> None:
    with server(tmp_path, {"echo.yaml": "name: echo\nbackend: fake\n"}) as srv:
        assert monitor(srv.url) == {}
        r = httpx.post(srv.url + "/backend/load", json={"model": "echo"}, timeout=30)
        assert r.status_code == 200, r.text
        row = monitor(srv.url)["echo"]
        assert row["backend"] == "fake" and row["state"] == "ready" and alive(row["pid"])
        assert row["in_flight"] == 0 and row["queued"] == 0 and row["rss_bytes"] > 1_000_000
        assert row["loaded_since"].endswith("Z") and row["last_used"].endswith("Z") and row["expires_at"] is None
        pid = row["pid"]
        before = scrape(srv.url)
        r = httpx.post(srv.url + "/backend/shutdown", json={"model": "echo"}, timeout=30)
        assert r.status_code == 200 and r.json() == {"model": "echo", "status": "unloaded"}
        assert monitor(srv.url) == {} and wait_for(lambda: not alive(pid), 5)
        assert "unloaded echo" in backend_log(tmp_path)  # the backend's unload_model ran
        assert delta(before, scrape(srv.url), "localai_worker_restarts_total", model="echo", reason="manual") == 1
        # Not loaded / unknown / malformed: clear errors.
        r = httpx.post(srv.url + "/backend/shutdown", json={"model": "echo"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_loaded"
        r = httpx.post(srv.url + "/backend/load", json={"model": "nope"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        assert httpx.post(srv.url + "/backend/load", json={}).status_code == 400
        assert httpx.get(srv.url + "/backend/monitor", params={"model": "echo"}).status_code == 404
        # The next request reloads it.
        assert complete(srv.url, "echo", "back").json()["choices"][0]["text"] == "back "
        assert monitor(srv.url)["echo"]["pid"] != pid


def test_busy_state_counts_in_flight(tmp_path: Path) -> None:
    with server(tmp_path, {"slow.yaml": "name: slow\nbackend: fake\noptions: ['delay:0.3']\n"}) as srv:
        t = threading.Thread(target=complete, args=(srv.url, "slow", "a b c d e f g h"))
        t.start()
        row = wait_for(lambda: monitor(srv.url).get("slow", {}).get("state") == "busy" and monitor(srv.url)["slow"])
        assert row and row["in_flight"] == 1 and row["oldest_request_seconds"] >= 0
        t.join(30)
        assert monitor(srv.url)["slow"]["state"] == "ready"


def test_idle_watchdog_and_keep_alive(tmp_path: Path) -> None:
    files = {
        "idle.yaml": "name: idle\nbackend: fake\n",  # the global --watchdog-idle-timeout (5s)
        "never.yaml": "name: never\nbackend: fake\nkeep_alive: -1\n",  # Ollama: negative = stay loaded
        "once.yaml": "name: once\nbackend: fake\nkeep_alive: 0\n",  # Ollama: 0 = unload after each request
    }
    with server(tmp_path, files, "--enable-watchdog-idle", "--watchdog-idle-timeout", "5s") as srv:
        before = scrape(srv.url)
        for m in ("never", "once", "idle"):
            assert complete(srv.url, m, "hi").status_code == 200
        rows = monitor(srv.url)
        assert rows["never"]["expires_at"] is None and rows["idle"]["expires_at"] is not None
        assert wait_for(lambda: "once" not in monitor(srv.url), 5)
        assert "idle" in monitor(srv.url)  # 5s not over yet (the "once" unload takes ~1s grace)
        assert wait_for(lambda: "idle" not in monitor(srv.url), 10)
        time.sleep(1)
        assert set(monitor(srv.url)) == {"never"}
        log = backend_log(tmp_path)
        assert "unloaded idle" in log and "unloaded once" in log and "unloaded never" not in log
        after = scrape(srv.url)
        assert delta(before, after, "localai_worker_restarts_total", reason="idle") == 2
        assert complete(srv.url, "idle", "again").json()["choices"][0]["text"] == "again "


def test_keep_alive_must_be_a_duration(tmp_path: Path) -> None:
    with server(tmp_path, {"bad.yaml": "name: bad\nbackend: fake\nkeep_alive: soon\n", "ok.yaml": "name: ok\nbackend: fake\n"}) as srv:
        assert "invalid duration 'soon'" in srv.log()
        assert [m["id"] for m in httpx.get(srv.url + "/v1/models").json()["data"]] == ["ok"]


def test_busy_watchdog_kills_a_hung_generation(tmp_path: Path) -> None:
    files = {"hang.yaml": "name: hang\nbackend: fake\noptions: ['delay:60']\n", "echo.yaml": "name: echo\nbackend: fake\n"}
    with server(tmp_path, files, "--enable-watchdog-busy", "--watchdog-busy-timeout", "2s") as srv:
        assert complete(srv.url, "echo", "warm").status_code == 200
        before = scrape(srv.url)
        results: dict[str, httpx.Response] = {}
        hung = [threading.Thread(target=lambda: results.setdefault("openai", complete(srv.url, "hang", "never ends"))),
                threading.Thread(target=lambda: results.setdefault("anthropic", httpx.post(
                    srv.url + "/v1/messages", timeout=60,
                    json={"model": "hang", "max_tokens": 5, "messages": [{"role": "user", "content": "x y"}]})))]
        for t in hung:
            t.start()
        # The other model keeps answering while one hangs.
        started = time.monotonic()
        while any(t.is_alive() for t in hung) and time.monotonic() - started < 30:
            assert complete(srv.url, "echo", "still fine").json()["choices"][0]["text"] == "still fine "
            time.sleep(0.2)
        for t in hung:
            t.join(30)
        r = results["openai"]
        assert r.status_code == 504
        err = r.json()["error"]
        assert err["code"] == "worker_timeout" and "'hang'" in err["message"] and "2s" in err["message"]
        a = results["anthropic"]
        assert a.status_code == 504 and a.json()["type"] == "error" and a.json()["error"]["type"] == "timeout_error"
        assert 1.5 < time.monotonic() - started < 15
        assert delta(before, scrape(srv.url), "localai_worker_restarts_total", model="hang", reason="busy_watchdog") == 1
        # The next request reloads the model (an empty prompt finishes at once even at this delay).
        assert complete(srv.url, "hang", "").status_code == 200


def test_max_active_backends_evicts_the_least_recently_used_idle_model(tmp_path: Path) -> None:
    files = {f"m{i}.yaml": f"name: m{i}\nbackend: fake\n" for i in range(3)}
    with server(tmp_path, files, "--max-active-backends", "2") as srv:
        before = scrape(srv.url)
        complete(srv.url, "m0", "a")
        complete(srv.url, "m1", "b")
        time.sleep(1.2)  # past the grace period a just-used model keeps
        complete(srv.url, "m0", "c")  # m1 is now the least recently used
        time.sleep(1.2)
        assert complete(srv.url, "m2", "d").status_code == 200
        assert set(monitor(srv.url)) == {"m0", "m2"}
        assert "unloaded m1" in backend_log(tmp_path)
        assert delta(before, scrape(srv.url), "localai_worker_restarts_total", model="m1", reason="eviction") == 1


def test_single_active_backend_waits_for_a_busy_model(tmp_path: Path) -> None:
    files = {"slow.yaml": "name: slow\nbackend: fake\noptions: ['delay:0.3']\n", "echo.yaml": "name: echo\nbackend: fake\n"}
    with server(tmp_path, files, "--single-active-backend", "--max-active-wait", "20s") as srv:
        done: dict[str, httpx.Response] = {}
        t = threading.Thread(target=lambda: done.setdefault("slow", complete(srv.url, "slow", "a b c d e f")))
        t.start()
        assert wait_for(lambda: monitor(srv.url).get("slow", {}).get("state") == "busy")
        r = complete(srv.url, "echo", "after")  # waits until slow is done (and idle), then replaces it
        t.join(30)
        assert done["slow"].json()["choices"][0]["text"] == "a b c d e f "  # never cut short
        assert r.json()["choices"][0]["text"] == "after "
        assert set(monitor(srv.url)) == {"echo"}


def test_pinned_model_is_never_evicted_and_a_full_server_answers_busy(tmp_path: Path) -> None:
    files = {"pin.yaml": "name: pin\nbackend: fake\npinned: true\n", "other.yaml": "name: other\nbackend: fake\n"}
    with server(tmp_path, files, "--single-active-backend", "--max-active-wait", "1s") as srv:
        assert complete(srv.url, "pin", "x").status_code == 200
        time.sleep(1.2)
        before = scrape(srv.url)
        r = complete(srv.url, "other", "y")
        assert r.status_code == 503 and r.headers.get("retry-after")
        err = r.json()["error"]
        assert err["code"] == "server_busy" and "'other'" in err["message"] and "--max-active-backends 1" in err["message"]
        r = httpx.post(srv.url + "/v1/messages", json={"model": "other", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
                       timeout=30)
        assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
        assert set(monitor(srv.url)) == {"pin"}
        assert delta(before, scrape(srv.url), "localai_queue_rejections_total", model="other") == 2


def test_a_model_that_cannot_fit_in_memory_is_refused_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    files = {"huge.yaml": "name: huge\nbackend: fake\ncontext_size: 4096\nparameters:\n  model: huge.bin\n",
             "echo.yaml": "name: echo\nbackend: fake\n"}
    with server(tmp_path, files) as srv:
        with open(folder / "huge.bin", "wb") as f:  # sparse: 1 TiB on paper, nothing on disk
            f.truncate(2**40)
        assert complete(srv.url, "echo", "x").status_code == 200
        time.sleep(1.2)
        r = complete(srv.url, "huge", "x")
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["code"] == "insufficient_memory" and "'huge'" in err["message"] and "GiB" in err["message"]
        assert "echo" not in monitor(srv.url)  # the idle model was unloaded first, to try to make room


def test_preload_and_readiness(tmp_path: Path) -> None:
    files = {"a.yaml": "name: a\nbackend: fake\noptions: ['load_delay:2']\n",
             "b.yaml": "name: b\nbackend: fake\npreload: true\n", "c.yaml": "name: c\nbackend: fake\n"}
    with server(tmp_path, files, "--preload-models", "a") as srv:
        r = httpx.get(srv.url + "/readyz")
        assert r.status_code == 503 and "a" in r.json()["loading"]
        assert wait_for(lambda: httpx.get(srv.url + "/readyz").status_code == 200, 20)
        assert set(monitor(srv.url)) == {"a", "b"}
    with server(tmp_path / "x", files, "--preload-models", "missing") as srv:
        def failed() -> list:
            r = httpx.get(srv.url + "/readyz")
            return r.json().get("failed", []) if r.status_code == 503 else []
        assert "missing" in wait_for(lambda: "missing" in failed() and failed(), 20)


def test_lifecycle_flags_have_env_vars_and_help() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "localai.cli", "run", "--help"], capture_output=True, text=True, timeout=60).stdout
    for flag, env in [("--enable-watchdog-idle", "LOCALAI_WATCHDOG_IDLE"), ("--watchdog-idle-timeout", "LOCALAI_WATCHDOG_IDLE_TIMEOUT"),
                      ("--enable-watchdog-busy", "LOCALAI_WATCHDOG_BUSY"), ("--watchdog-busy-timeout", "LOCALAI_WATCHDOG_BUSY_TIMEOUT"),
                      ("--max-active-backends", "LOCALAI_MAX_ACTIVE_BACKENDS"), ("--single-active-backend", "LOCALAI_SINGLE_ACTIVE_BACKEND"),
                      ("--preload-models", "LOCALAI_PRELOAD_MODELS"), ("--shutdown-timeout", "LOCALAI_SHUTDOWN_TIMEOUT"),
                      ("--upload-limit", "LOCALAI_UPLOAD_LIMIT"), ("--max-active-wait", "LOCALAI_MAX_ACTIVE_WAIT"),
                      ("--disable-memory-check", "LOCALAI_DISABLE_MEMORY_CHECK")]:
        assert flag in out and env in out.replace("\n", " ").replace("  ", " "), flag


@pytest.mark.parametrize("text,seconds", [("15m", 900), ("1h30m", 5400), ("500ms", 0.5), ("90", 90), (300, 300), ("-1", -1), ("-5m", -300), ("0", 0)])
def test_parse_duration(text: object, seconds: float) -> None:
    from localai.runtime.lifecycle import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "5x", "m", "", True])
def test_parse_duration_refuses(bad: object) -> None:
    from localai.runtime.lifecycle import parse_duration

    with pytest.raises(ValueError):
        parse_duration(bad)
