"""Helpers for tests that run a fake-backend server: model folders, requests, and reading ``/metrics``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

TESTS_DIR = Path(__file__).parent
FAKE_ENV = {"LOCALAI_PLUGINS": "fake_backend", "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}


def models(tmp_path: Path, files: dict[str, str], name: str = "models") -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True)
    for fname, text in files.items():
        (folder / fname).write_text(text)
    return folder


def complete(url: str, model: str, prompt: str, headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/completions", json={"model": model, "prompt": prompt, **extra}, headers=headers, timeout=60)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    """Every sample of ``GET /metrics``, parsed by prometheus_client's own parser."""
    r = httpx.get(url + "/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def metric(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name``'s samples whose labels include ``labels`` (0 when there are none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return metric(after, name, **labels) - metric(before, name, **labels)


def wait_for(cond: Callable[[], Any], timeout: float = 15, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(every)


def monitor(url: str, headers: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    r = httpx.get(url + "/backend/monitor", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return {row["model"]: row for row in r.json()["models"]}


def sse_events(lines: list[str]) -> list[str]:
    return [line[6:] for line in lines if line.startswith("data: ")]
