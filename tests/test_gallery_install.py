"""Install orchestration in-process: the decisions of the backend step (``localai.install.backends`` replaced by a
recorder: which backend is asked for, when the job fails before downloading), file:// sources, reinstalls, and the
catalog reload that makes a new model servable. Uses the test-only fake backend for core logic; the real install of a
model's backend into a fresh environment is ``tests/test_backend_envs.py::test_a_gallery_model_installs_its_backend_for_real_then_is_served``.
"""

from __future__ import annotations

import hashlib
import sys
import types

import fake_backend
import pytest
import yaml
from localai.install.jobs import Job
from localai.install.models.index import Galleries, GalleryError, GalleryRef
from localai.install.models.install import GalleryService
from localai.install.models.merge import ApplyRequest
from localai.registry.backends import Registry
from localai.registry.catalog import Catalog
from localai.registry.plugins import PluginManager


@pytest.fixture()
def setup(tmp_path):
    src = tmp_path / "src.fake"
    src.write_bytes(b"fake weights" * 1000)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    index = [
        {"name": "echo", "overrides": {"backend": "fake", "parameters": {"model": "echo.fake"}},
         "files": [{"filename": "echo.fake", "uri": f"file://{src}", "sha256": sha}]},
        {"name": "echo-copy", "overrides": {"backend": "fake_backend", "parameters": {"model": "echo.fake"}},
         "files": [{"filename": "echo.fake", "uri": f"file://{src}", "sha256": sha}]},
        {"name": "needs-other", "overrides": {"backend": "other-engine", "parameters": {"model": "o.fake"}},
         "files": [{"filename": "o.fake", "uri": f"file://{src}"}]},
    ]
    (tmp_path / "index.yaml").write_text(yaml.safe_dump(index))
    models = tmp_path / "models"
    models.mkdir()
    pm = PluginManager()
    registry = Registry(pm)
    catalog = Catalog(models, registry).load()

    def refresh():  # what the backend gallery's install makes visible: the plugin is now there
        if "fake" not in pm.infos:
            pm.add_plugin(fake_backend, "fake")
        registry.__init__(pm)

    svc = GalleryService(models, Galleries([GalleryRef(name="local", url=str(tmp_path / "index.yaml"))]),
                         catalog=catalog, registry=registry, backends_path=tmp_path / "backends", refresh_backends=refresh)
    return svc, catalog, models


def fake_backend_envs(offered: list[dict]) -> tuple[types.ModuleType, list]:
    calls: list = []
    mod = types.ModuleType("localai.install.backends")

    def available(backends_path, galleries=()):
        calls.append(("available", backends_path))
        return offered

    def install(spec, *, backends_path, name=None, aliases=(), force=False, progress=None, cancelled=None, galleries=()):
        calls.append(("install", spec, backends_path, cancelled()))
        progress("unpacking", 0.5)
        return {"name": spec}

    mod.available, mod.install = available, install
    return mod, calls


def test_a_missing_backend_the_backend_gallery_offers_is_asked_for_then_the_model_is_usable(setup, monkeypatch):
    svc, catalog, models = setup
    mod, calls = fake_backend_envs([{"name": "fake", "aliases": ["fake_backend"], "installed": False}])
    monkeypatch.setitem(sys.modules, "localai.install.backends", mod)
    job = Job(kind="model", name="echo")
    result = svc.install(ApplyRequest(id="echo"), job)
    assert ("install", "fake", models.parent / "backends", False) in calls
    assert result["name"] == "echo" and (models / "echo.fake").is_file()
    entry = catalog.get("echo")
    assert entry is not None and entry.usable and entry.backend.name == "fake"


def test_a_backend_no_gallery_offers_fails_before_downloading(setup, monkeypatch):
    svc, _, models = setup
    mod, calls = fake_backend_envs([{"name": "fake", "installed": False}])
    monkeypatch.setitem(sys.modules, "localai.install.backends", mod)
    with pytest.raises(GalleryError, match="no backend gallery offers it.*localai backends install other-engine"):
        svc.install(ApplyRequest(id="needs-other"), Job(kind="model", name="x"))
    assert not [c for c in calls if c[0] == "install"]
    assert sorted(p.name for p in models.iterdir()) == []


def test_without_the_backend_gallery_module_the_error_names_the_command(setup, monkeypatch):
    svc, _, models = setup
    monkeypatch.setitem(sys.modules, "localai.install.backends", None)   # import fails
    with pytest.raises(GalleryError, match="install it with: localai backends install fake"):
        svc.install(ApplyRequest(id="echo"), Job(kind="model", name="x"))
    assert list(models.iterdir()) == []


def test_two_models_sharing_a_file_and_a_reinstall(setup, monkeypatch):
    svc, catalog, models = setup
    mod, calls = fake_backend_envs([{"name": "fake", "aliases": ["fake_backend"], "installed": False}])
    monkeypatch.setitem(sys.modules, "localai.install.backends", mod)
    svc.install(ApplyRequest(id="echo"), Job(kind="model", name="echo"))
    svc.install(ApplyRequest(id="echo-copy"), Job(kind="model", name="echo-copy"))
    mtime = (models / "echo.fake").stat().st_mtime_ns
    svc.install(ApplyRequest(id="echo", overrides={"context_size": 64}), Job(kind="model", name="echo"))
    assert (models / "echo.fake").stat().st_mtime_ns == mtime          # verified by sha256, not downloaded again
    assert catalog.get("echo").config.context_size == 64               # the reinstall's overrides are served
    svc.delete("echo", Job(kind="model", name="echo", deletion=True))
    assert (models / "echo.fake").is_file() and catalog.get("echo") is None   # echo-copy still uses the file
    svc.delete("echo-copy", Job(kind="model", name="echo-copy", deletion=True))
    assert sorted(p.name for p in models.iterdir()) == []


def test_a_name_taken_by_another_config_file_is_refused(setup, monkeypatch):
    svc, catalog, models = setup
    (models / "mine.yaml").write_text("- name: echo\n  backend: fake\n- name: other\n  backend: fake\n")
    catalog.reload()
    with pytest.raises(GalleryError, match="already configured in mine.yaml"):
        svc.install(ApplyRequest(id="echo"), Job(kind="model", name="echo"))
    with pytest.raises(GalleryError, match="defines 2 models"):
        svc.config_file_of("mine")
    with pytest.raises(GalleryError, match="not in its own"):
        svc.config_file_of("echo")


def test_a_backend_registered_without_its_engine_gets_its_environment_asked_for(setup, monkeypatch):
    # torch backends are registered in the server's venv without their engine (check() says why): a model needing
    # one must install its environment from the backend gallery, not be written down as servable.
    svc, _, models = setup
    from localai.registry.backends import Registry

    state = {"installed": False}
    real_resolve = Registry.resolve

    def resolve(self, name):
        backend = real_resolve(self, name)
        if not state["installed"]:
            backend._unavailable = "torch is not installed here: run `localai backends install fake`"
        return backend

    monkeypatch.setattr(Registry, "resolve", resolve)
    svc.refresh_backends()  # the plugin is registered from the start, but cannot run
    mod, calls = fake_backend_envs([{"name": "fake", "aliases": ["fake_backend"], "installed": False}])
    real_install = mod.install

    def install(spec, **kw):
        state["installed"] = True
        return real_install(spec, **kw)

    mod.install = install
    monkeypatch.setitem(sys.modules, "localai.install.backends", mod)
    svc.install(ApplyRequest(id="echo"), Job(kind="model", name="echo"))
    assert [c[1] for c in calls if c[0] == "install"] == ["fake"]
    assert (models / "echo.fake").is_file()
