"""Soaks (300 requests in the default tier, 1,000 in the slow one; ``bench/soak.py`` runs 10,000): the API process
does not leak.

Mixed across the three APIs, streamed and not, one stream in ten hung up on. After warm-up the API
process's RSS grows at most 5%, and its threads, file descriptors, workers and the workers' threads are back where
they were once pooled threads have gone idle (``soak.settled``: a leaked thread never goes).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from localai.testing import ServerProcess
from serving import FAKE_ENV, models

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


def load_soak():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("localai_bench_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("requests", "warmup"), [pytest.param(300, 100, id="300"),
                                                  pytest.param(1000, 200, id="1000", marks=pytest.mark.slow)])
def test_soak_does_not_leak(tmp_path: Path, requests: int, warmup: int) -> None:
    soak = load_soak()
    server_tmp = tmp_path / "server-tmp"
    server_tmp.mkdir()
    with ServerProcess(models(tmp_path, {"echo.yaml": "name: echo\nbackend: fake\n"}),
                       env={**FAKE_ENV, "LOCALAI_LOG_LEVEL": "WARNING", "TMPDIR": str(server_tmp)}) as srv:
        assert srv.proc is not None
        result = soak.run(srv.url, srv.proc.pid, requests=requests, clients=4, model="echo", warmup=warmup, tmpdir=server_tmp)
    print(json.dumps(result))
    outcomes = result["outcomes"]
    assert set(outcomes) <= {"ok", "disconnected"}, outcomes
    assert outcomes.get("disconnected", 0) >= requests * 3 // 100  # one stream in ten is hung up on
    warm, end = result["after_warmup"], result["end"]
    assert result["rss_growth_pct"] <= 5.0, result
    assert end["threads"] <= warm["threads"], result
    assert end["fds"] <= warm["fds"] + 2, result
    assert end["workers"] == warm["workers"] == 1, result
    assert end["worker_threads"] <= warm["worker_threads"], result  # cancelled generations' threads ended
    assert result["new_temp_files"] == [], result
