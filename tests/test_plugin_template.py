"""``localai plugin new``: the generated package installs in its own environment, registers, and its
conformance test runs, failing exactly where the engine code is still to be written."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from localai.plugin_template import names, new_plugin


def localai(*args: str, python: str = sys.executable, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-m", "localai.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_new_writes_the_package(tmp_path: Path) -> None:
    r = localai("plugin", "new", "demo-engine", "--dir", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stderr
    root = tmp_path / "demo"
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert files == {"pyproject.toml", "README.md", "tests/test_conformance.py", "localai_demo_engine/__init__.py",
                     "localai_demo_engine/plugin.py", "localai_demo_engine/options.py", "localai_demo_engine/model.py"}
    pyproject = (root / "pyproject.toml").read_text()
    assert 'name = "localai-demo-engine"' in pyproject
    assert '[project.entry-points."localai.backends"]\ndemo-engine = "localai_demo_engine.plugin"' in pyproject
    assert "test = [" in pyproject
    hooks = (root / "localai_demo_engine/plugin.py").read_text()
    defined = {line.split("(")[0].removeprefix("def ") for line in hooks.splitlines() if line.startswith("def ")}
    assert defined == {"check", "register_backends"}  # a declaration: no dispatch code, no per-hook loading
    assert 'load="localai_demo_engine.model:DemoEngineModel.load"' in hooks and "parse=parse" in hooks
    assert "class DemoEngineModel" in (root / "localai_demo_engine/model.py").read_text()
    assert "TODO(engine)" in (root / "localai_demo_engine/model.py").read_text()
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    assert "model.py" in r.stdout and "localai backends install" in r.stdout


def test_new_refuses_a_bad_name_or_a_used_folder(tmp_path: Path) -> None:
    r = localai("plugin", "new", "9-Bad Name", "--dir", str(tmp_path / "x"))
    assert r.returncode == 1 and "lowercase letters" in r.stderr and not (tmp_path / "x").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    r = localai("plugin", "new", "ok", "--dir", str(tmp_path / "used"))
    assert r.returncode == 1 and "already exists" in r.stderr
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["keep.txt"]


def test_names() -> None:
    assert names("localai-My_Engine2") == {"name": "my-engine2", "package": "localai_my_engine2", "cls": "MyEngine2Model",
                                               "aliases": "", "core_version": names("x")["core_version"]}
    with pytest.raises(ValueError):
        names("a--b")


def test_generated_plugin_installs_in_its_own_environment_and_runs_the_conformance_suite(tmp_path: Path) -> None:
    root, _ = new_plugin("demo-engine", tmp_path / "localai-demo-engine")
    # Its own environment: a venv that sees this one's packages (localai-core from this checkout, pytest,
    # the SDKs) through a .pth, with the new plugin installed into it alone.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_localai_parent.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    pip = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "-e", str(root)], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]

    listed = localai("backends", python=python)
    row = next((line for line in listed.stdout.splitlines() if line.startswith("demo-engine ")), "")
    assert "localai-demo-engine 0.1.0" in row and "available" in row, listed.stdout
    assert "demo-engine" not in localai("backends").stdout  # installed in its own environment only
    shown = localai("backends", "show", "demo-engine", python=python)
    assert "n_batch, batch: int (default 512)" in shown.stdout

    run, outcomes = conformance(python, root)
    # What the template already gets right passes...
    for name in ("test_registration", "test_capabilities", "test_option_table", "test_discovery_and_check_do_not_import_the_engine",
                 "test_option_errors_name_the_option", "test_load_describes_the_model", "test_unload",
                 "test_constraint_refused_without_grammar"):
        assert outcomes.get(name) == "passed", (name, outcomes.get(name), run.stdout[-3000:])
    # ...and every engine check fails naming its contract item and the function to write, in model.py.
    model_py = str(root / "localai_demo_engine" / "model.py")
    for name, item in (("test_greedy_is_deterministic", "greedy"), ("test_tokenize_round_trip", "tokenize"),
                       ("test_embeddings", "embeddings"), ("test_http_greedy_stream_and_usage", "greedy"),
                       ("test_http_tokenize", "tokenize"), ("test_cancel_stops_within_a_few_tokens", "cancel")):
        message = outcomes.get(name, "missing")
        assert f"backend contract [{item}]" in message and "TODO(engine): engine_tokenize()" in message and model_py in message, (name, message)
        assert "how to fix:" in message
    assert run.returncode == 1

    # Filled in with a toy engine (bytes as tokens, a fixed text as greedy output), the template's model class
    # meets the whole contract: the generic code around the TODO(engine) functions is right.
    model_py = root / "localai_demo_engine" / "model.py"
    source = model_py.read_text()
    start, end = source.index("# ---- TODO(engine)"), source.index("# ---- the model protocol")
    model_py.write_text(source[:start] + TOY_ENGINE + source[end:])
    (root / "tests" / "toy.bin").write_text("toy weights")
    test_py = root / "tests" / "test_conformance.py"
    test_py.write_text(test_py.read_text()
                       .replace('model = {"context_size": 512}', 'model = {"context_size": 512, "parameters": {"model": "toy.bin"}}')
                       .replace("normalized_embeddings = False", "normalized_embeddings = True")
                       .replace("return {}  # e.g.", 'return {"toy.bin": HERE / "toy.bin"}  # e.g.'))
    run, outcomes = conformance(python, root)
    failed = {name: message for name, message in outcomes.items() if message not in ("passed", "skipped")}
    assert not failed and run.returncode == 0, (failed, run.stdout[-3000:])
    assert outcomes["test_missing_model_file_fails_the_load_clearly"] == "passed"
    assert outcomes["test_http_text_model_refuses_images"] == "passed"
    # the capabilities it lacks (image generation, vision) and the batch invariance it does not claim
    skipped = sorted(n for n, o in outcomes.items() if o == "skipped")
    assert skipped == ["test_http_images", "test_http_same_answer_cold_warm_and_batched", "test_http_vision",
                       "test_image_generation", "test_prompt_cache_survives_a_restart", "test_vision_answers_follow_the_image",
                       "test_vision_cache_never_reuses_another_images_kv",
                       "test_vision_concurrent_requests_get_their_solo_answers", "test_vision_stream_equals_non_stream",
                       "test_vision_three_apis_one_answer", "test_vision_usage_counts_the_image"]


def conformance(python: str, root: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run the package's tests; each test's outcome: passed, skipped, or its failure text."""
    junit = root / "junit.xml"
    junit.unlink(missing_ok=True)
    run = subprocess.run([python, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"],
                         cwd=root, capture_output=True, text=True, timeout=600)
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if case.find("skipped") is not None:
            outcomes[case.get("name", "")] = "skipped"
        else:
            outcomes[case.get("name", "")] = (bad.get("message", "") + (bad.text or "")) if bad is not None else "passed"
    return run, outcomes


TOY_ENGINE = """
import math
import time

GREEDY = "the quick brown fox jumps over the lazy dog and "
BOS = 256


def engine_load(model_path, options):
    return {"weights": open(model_path).read()}


def engine_tokenize(engine, text, add_special):
    return ([BOS] if add_special else []) + list(text.encode())


def engine_token_bytes(engine, token):
    return b"" if token == BOS else bytes([token])


def engine_next_token(engine, tokens, temperature, rng):
    time.sleep(0.01)  # a real engine takes time per token: lets a cancel arrive mid-generation
    if temperature == 0:
        return GREEDY.encode()[(sum(tokens) + len(tokens)) % len(GREEDY)], False
    return rng.choice(b"abcdefghij "), False


def engine_embed(engine, tokens):
    counts = [0.0] * 16
    for t in tokens:
        counts[t % 16] += 1
    norm = math.sqrt(sum(c * c for c in counts)) or 1.0
    return [c / norm for c in counts]


def engine_close(engine):
    pass


"""
