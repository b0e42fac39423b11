"""Plugin discovery, hook validation and backend resolution, with throw-away plugins registered in-process."""

from __future__ import annotations

import types

import fake_backend
import pytest
from localai import hookimpl
from localai.registry.backends import BackendError, Registry, normalise
from localai.registry.plugins import PluginManager, load_named_modules, make_plugin_manager


def manager(*plugins: tuple[str, object]) -> PluginManager:
    pm = PluginManager()
    for name, plugin in plugins:
        pm.add_plugin(plugin, name, distribution=f"dist-{name}", version="1.0")
    return pm


def plugin_module(name: str, **hooks: object) -> types.ModuleType:
    mod = types.ModuleType(name)
    for key, fn in hooks.items():
        setattr(mod, key, fn)
    return mod


def registering(backend: str, aliases: tuple[str, ...] = (), formats: tuple[str, ...] = (), check=None):  # type: ignore[no-untyped-def]
    @hookimpl
    def register_backends(register):  # type: ignore[no-untyped-def]
        register(backend, aliases=aliases, formats=formats, check=check)

    return register_backends


def test_installed_llama_cpp_plugin_is_discovered_by_entry_point() -> None:
    registry = Registry(make_plugin_manager())
    backend = registry.resolve("llama-cpp")
    assert backend.distribution == "localai-llama-cpp"
    assert "llama" in backend.aliases
    assert backend.unavailable is None


@pytest.mark.parametrize("spelling", ["fake", "FAKE", "fake_backend", "Fake-Backend", "fake.echo", "FAKE_ECHO"])
def test_aliases_resolve_case_and_separator_insensitively(spelling: str) -> None:
    registry = Registry(manager(("fake", fake_backend)))
    assert registry.resolve(spelling).name == "fake"


@pytest.mark.parametrize("spelling,canonical", [("llama", "llama-cpp"), ("LLAMA.CPP", "llama-cpp"), ("llama_cpp", "llama-cpp")])
def test_llama_aliases(spelling: str, canonical: str) -> None:
    registry = Registry(make_plugin_manager())
    assert registry.resolve(spelling).name == canonical


def test_known_but_missing_backend_names_the_distribution_to_install() -> None:
    registry = Registry(manager(("fake", fake_backend)))
    for name, dist in [("vllm", "localai-vllm"), ("ik_llama", "localai-ik-llama"), ("transformers", "localai-transformers")]:
        with pytest.raises(BackendError, match=f"pip install {dist}"):
            registry.resolve(name)


def test_unknown_backend_lists_installed_ones() -> None:
    registry = Registry(manager(("fake", fake_backend)))
    with pytest.raises(BackendError, match=r"unknown backend 'nope'; installed backends: fake"):
        registry.resolve("nope")


def test_two_plugins_claiming_one_name_is_an_error_naming_both() -> None:
    a = plugin_module("a", register_backends=registering("dup"))
    b = plugin_module("b", register_backends=registering("other", aliases=("DUP",)))
    registry = Registry(manager(("a", a), ("b", b)))
    assert len(registry.errors) == 1
    assert "dist-a" in registry.errors[0] and "dist-b" in registry.errors[0]


def test_hookimpl_matching_no_spec_rejects_the_plugin() -> None:
    @hookimpl
    def generate_text(prompt):  # type: ignore[no-untyped-def]  # a typo'd hook name
        return prompt

    bad = plugin_module("bad", generate_text=generate_text, register_backends=registering("bad"))
    pm = manager(("bad", bad), ("fake", fake_backend))
    assert pm.infos["bad"].error is not None and "generate_text" in pm.infos["bad"].error
    registry = Registry(pm)
    assert "bad" not in registry.backends and "fake" in registry.backends


def test_hookimpl_with_unknown_argument_is_rejected() -> None:
    @hookimpl
    def load_model(backend, config, weights):  # type: ignore[no-untyped-def]
        return None

    pm = manager(("odd", plugin_module("odd", load_model=load_model)))
    assert pm.infos["odd"].error is not None and "weights" in pm.infos["odd"].error


def test_plugin_that_fails_to_import_is_reported_and_others_load(monkeypatch: pytest.MonkeyPatch) -> None:
    pm = PluginManager()
    load_named_modules(pm, "no_such_module_xyz, fake_backend")
    assert "ModuleNotFoundError" in (pm.infos["no_such_module_xyz"].error or "")
    assert Registry(pm).resolve("fake").name == "fake"


def test_plugin_raising_in_register_is_reported() -> None:
    @hookimpl
    def register_backends(register):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    pm = manager(("boom", plugin_module("boom", register_backends=register_backends)), ("fake", fake_backend))
    registry = Registry(pm)
    assert any("boom" in e for e in registry.errors)
    assert "fake" in registry.backends


def test_backend_for_file_prefers_available_llama_cpp_family() -> None:
    unavailable = plugin_module("x", register_backends=registering("ik-llama-cpp", formats=("gguf",), check=lambda: "no AVX2"))
    pm = manager(("x", unavailable))
    pm.add_plugin(__import__("localai_llama_cpp.plugin", fromlist=["plugin"]), "llama-cpp")
    registry = Registry(pm)
    assert registry.for_file("model.GGUF").name == "llama-cpp"  # type: ignore[union-attr]
    assert registry.for_file("model.bin") is None


def test_broken_availability_check_is_a_reason_not_a_crash() -> None:
    def check() -> str | None:
        raise OSError("cannot read cpuinfo")

    registry = Registry(manager(("c", plugin_module("c", register_backends=registering("c", check=check)))))
    assert "cannot read cpuinfo" in (registry.resolve("c").unavailable or "")


def test_normalise() -> None:
    assert normalise(" IK_Llama.cpp ") == "ik-llama-cpp"


# -- backends as declarations, and the deprecated per-hook form ------------------------------------------------

class Loaded:
    def __init__(self, config, model_path, options):  # type: ignore[no-untyped-def]
        self.config, self.model_path, self.options = config, model_path, options

    @classmethod
    def load(cls, config, model_path, options):  # type: ignore[no-untyped-def]
        return cls(config, model_path, options)


def test_a_declared_backend_is_parsed_and_loaded_by_the_core_without_hooks(recwarn: pytest.WarningsRecorder) -> None:
    from localai.config import ModelConfig
    from localai.options import OptionSpec

    @hookimpl
    def register_backends(register):  # type: ignore[no-untyped-def]
        register("decl", options=[OptionSpec("size", "int", "how big", default=4)], load=f"{__name__}:Loaded.load")
        register("decl-parsed", parse=lambda options, config: {"seen": list(options)}, load=Loaded.load)

    registry = Registry(manager(("decl", plugin_module("decl", register_backends=register_backends))))
    config = ModelConfig.model_validate({"name": "m", "backend": "decl"})
    backend = registry.resolve("decl")
    assert registry.parse_options(backend, ["size:8"], config) == {"size": 8}  # from the option table
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        registry.parse_options(backend, ["colour:red"], config)
    model = registry.load_model(backend, config, "/models/x", {"size": 8})
    assert isinstance(model, Loaded) and model.model_path == "/models/x" and model.options == {"size": 8}
    assert registry.parse_options(registry.resolve("decl-parsed"), ["a:1"], config) == {"seen": ["a:1"]}
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_the_per_hook_form_still_loads_and_warns_that_it_is_deprecated() -> None:
    """A third-party plugin written against the first release (tests/fake_backend.py: parse_options and load_model
    hooks that check the backend name) keeps working for one release, with a warning naming what to write."""
    from localai.config import ModelConfig

    with pytest.warns(DeprecationWarning, match=r"plugin fake: backend 'fake' .*per-hook form.*load='pkg.module:Class.load'"):
        registry = Registry(manager(("fake", fake_backend)))
    config = ModelConfig.model_validate({"name": "m", "backend": "fake"})
    backend = registry.resolve("fake")
    assert backend.load is None
    model = registry.load_model(backend, config, None, registry.parse_options(backend, [], config) or {})
    assert type(model).__name__ == "FakeModel"


def test_every_in_repo_backend_is_a_declaration() -> None:
    registry = Registry(make_plugin_manager())
    for name in ("llama-cpp", "ik-llama-cpp", "turboquant", "transformers", "vllm", "diffusers"):
        backend = registry.resolve(name)
        assert backend.load is not None and backend.parse is not None, name
    for hook in ("parse_options", "load_model"):
        owners = {impl.plugin_name for impl in getattr(registry.pm.hook, hook).get_hookimpls()}
        assert not owners & {"llama-cpp", "ik-llama-cpp", "turboquant", "transformers", "vllm", "diffusers"}, (hook, owners)
