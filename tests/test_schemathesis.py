"""Schemathesis over the server's own OpenAPI document: no 5xx and no response outside the documented schema.

Every route's request body is in the document (FastAPI models), so the fuzzer reaches each. Runs the fake
backend with an API key, with a fixed seed so runs are reproducible; the case count is printed for the record. The
default tier (CI) runs 5 examples per operation, the slow tier 30.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from localai.testing import ServerProcess
from serving import FAKE_ENV, models


@pytest.mark.parametrize(("examples", "at_least"), [pytest.param(5, 300, id="short"),
                                                    pytest.param(30, 2000, id="30", marks=pytest.mark.slow)])
def test_schemathesis_finds_no_server_errors_or_schema_violations(tmp_path: Path, examples: int, at_least: int) -> None:
    folder = models(tmp_path, {"echo.yaml": "name: echo\nbackend: fake\n"})
    # A local model gallery: the default one is on the internet, and an unreachable gallery is a (correct) 502.
    gallery = tmp_path / "gallery.yaml"
    gallery.write_text("- name: tiny\n  description: a test entry\n  config_file: |\n    backend: fake\n")
    env = {**FAKE_ENV, "LOCALAI_API_KEY": "k", "LOCALAI_LOG_LEVEL": "WARNING",
           "LOCALAI_GALLERIES": f'[{{"name": "local", "url": "{gallery}"}}]'}
    with ServerProcess(folder, env=env) as srv:
        cmd = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{srv.url}/openapi.json", "-H", "Authorization: Bearer k",
               "--checks", "not_a_server_error,response_schema_conformance", "--max-examples", str(examples), "--seed", "1",
               "--generation-database", "none", "--no-color"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        server_log = srv.log()
    out = r.stdout + r.stderr
    m = re.search(r"(\d+) generated, (\d+) passed", out)
    print(m.group(0) if m else out[-3000:])
    assert r.returncode == 0, out[-5000:]
    assert m and int(m.group(1)) >= at_least and m.group(1) == m.group(2), out[-3000:]
    assert "Traceback" not in server_log, server_log[-5000:]
