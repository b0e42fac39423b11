"""A short soak (1,000 requests; ``bench/soak.py`` runs the issue's 10,000): the API process does not leak.

Mixed across the three APIs, streamed and not, one stream in ten hung up on. After warm-up the API
process's RSS grows at most 5%, and its threads, file descriptors, workers and the workers' threads stay as they were.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from localai.testing import ServerProcess
from serving import FAKE_ENV, models

pytestmark = pytest.mark.slow

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


def load_soak():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("localai_bench_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_soak_1000_requests_does_not_leak(tmp_path: Path) -> None:
    soak = load_soak()
    server_tmp = tmp_path / "server-tmp"
    server_tmp.mkdir()
    with ServerProcess(models(tmp_path, {"echo.yaml": "name: echo\nbackend: fake\n"}),
                       env={**FAKE_ENV, "LOCALAI_LOG_LEVEL": "WARNING", "TMPDIR": str(server_tmp)}) as srv:
        assert srv.proc is not None
        result = soak.run(srv.url, srv.proc.pid, requests=1000, clients=4, model="echo", warmup=200, tmpdir=server_tmp)
    print(json.dumps(result))
    outcomes = result["outcomes"]
    assert set(outcomes) <= {"ok", "disconnected"}, outcomes
    assert outcomes.get("disconnected", 0) >= 30
    warm, end = result["after_warmup"], result["end"]
    assert result["rss_growth_pct"] <= 5.0, result
    assert end["threads"] <= warm["threads"], result
    assert end["fds"] <= warm["fds"] + 2, result
    assert end["workers"] == warm["workers"] == 1, result
    assert end["worker_threads"] <= warm["worker_threads"], result  # cancelled generations' threads ended
    assert result["new_temp_files"] == [], result
