"""Graceful shutdown on SIGTERM: new requests 503, in-flight ones finish (or end with an error event), then exit."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
from localai.testing import ServerProcess, worker_pids
from serving import FAKE_ENV, complete, models, sse_events, wait_for

SLOW = {"slow.yaml": "name: slow\nbackend: fake\noptions: ['delay:0.25']\n", "echo.yaml": "name: echo\nbackend: fake\n"}


def stream_lines(url: str, body: dict, out: list[str], path: str = "/v1/completions") -> None:
    with httpx.stream("POST", url + path, json=body, timeout=60) as r:
        out.append(f"status {r.status_code}")
        for line in r.iter_lines():
            out.append(line)


def running(pids: list[int]) -> list[int]:
    """The processes among ``pids`` still running (an exited one no parent reaped yet is a zombie, not running)."""
    out = []
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append(p)
    return out


def test_sigterm_lets_streams_finish_and_refuses_new_requests(tmp_path: Path) -> None:
    srv = ServerProcess(models(tmp_path, SLOW), env=FAKE_ENV, args=["--shutdown-timeout", "30s"]).start()
    try:
        assert complete(srv.url, "echo", "warm").status_code == 200
        lines: list[str] = []
        words = " ".join(f"w{i}" for i in range(12))
        t = threading.Thread(target=stream_lines, args=(srv.url, {"model": "slow", "prompt": words, "stream": True, "max_tokens": 12}, lines))
        t.start()
        assert wait_for(lambda: any(ln.startswith("data: {") for ln in lines))
        pids = worker_pids(srv.proc.pid)  # type: ignore[union-attr]
        assert pids, "no worker process to watch"
        srv.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        time.sleep(0.3)
        r = complete(srv.url, "echo", "too late")
        assert r.status_code == 503 and r.json()["error"]["code"] == "server_shutting_down"
        assert httpx.get(srv.url + "/readyz").status_code == 503
        r = httpx.post(srv.url + "/v1/messages", json={"model": "echo", "max_tokens": 3, "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
        t.join(30)
        data = sse_events(lines)
        assert data[-1] == "[DONE]"
        text = "".join(json.loads(d)["choices"][0]["text"] for d in data[:-1])
        assert text == words + " "  # the whole generation, not cut
        srv.proc.wait(15)  # type: ignore[union-attr]  # raises TimeoutExpired if the server is still running
        assert wait_for(lambda: not running(pids), 10), f"workers still running after SIGTERM: {running(pids)}"
    finally:
        srv.stop()


def test_sigterm_past_the_timeout_ends_streams_with_an_error_event(tmp_path: Path) -> None:
    srv = ServerProcess(models(tmp_path, SLOW), env=FAKE_ENV, args=["--shutdown-timeout", "1s"]).start()
    try:
        openai_lines: list[str] = []
        anthropic_lines: list[str] = []
        words = " ".join(f"w{i}" for i in range(200))
        threads = [
            threading.Thread(target=stream_lines, args=(srv.url, {"model": "slow", "prompt": words, "stream": True, "max_tokens": 200},
                                                        openai_lines)),
            threading.Thread(target=stream_lines, args=(srv.url, {"model": "slow", "stream": True, "max_tokens": 200,
                                                                  "messages": [{"role": "user", "content": words}]},
                                                        anthropic_lines, "/v1/messages")),
        ]
        for t in threads:
            t.start()
        assert wait_for(lambda: any(ln.startswith("data: {") for ln in openai_lines) and any("content_block_delta" in ln for ln in anthropic_lines))
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        for t in threads:
            t.join(30)
        assert time.monotonic() - started < 10
        data = sse_events(openai_lines)
        assert data[-1] == "[DONE]"
        err = json.loads(data[-2])["error"]
        assert err["code"] == "server_shutting_down" and "--shutdown-timeout" in err["message"] and "'slow'" in err["message"]
        assert "event: error" in anthropic_lines
        last = json.loads(sse_events(anthropic_lines)[-1])
        assert last["type"] == "error" and last["error"]["type"] == "overloaded_error"
        srv.proc.wait(15)  # type: ignore[union-attr]  # raises TimeoutExpired if the server is still running
    finally:
        srv.stop()
