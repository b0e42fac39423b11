"""LocalAI-style model configs: parsing, problems, paths, and the catalog built from a folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import fake_backend
import pytest
from localai import hookimpl
from localai.config import load_folder, resolve_model_file
from localai.registry.backends import Registry
from localai.registry.catalog import Catalog
from localai.registry.plugins import PluginManager


@pytest.fixture
def registry() -> Registry:
    pm = PluginManager()
    pm.add_plugin(fake_backend, "fake")
    return Registry(pm)


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)


def test_fields_and_list_files(tmp_path: Path) -> None:
    write(tmp_path, "many.yaml", """
- name: a
  backend: fake
  context_size: 1024
  threads: 2
  f16: true
  mmap: false
  mmlock: false
  gpu_layers: 0
  parameters: {model: a.bin, temperature: 0.2, top_p: 0.9, top_k: 20, min_p: 0.1, max_tokens: 5, seed: 7,
               repeat_penalty: 1.1, presence_penalty: 0.5, frequency_penalty: 0.5}
  template: {chat: "{{ messages }}", use_tokenizer_template: true}
  stopwords: ["</s>"]
  options: ["delay:0", "flag"]
  cache_type_k: q8_0
  flash_attention: auto
  roles: {user: "User:"}
  known_usecases: [chat]
- name: b
  backend: fake
""")
    configs, problems = load_folder(tmp_path)
    assert problems == []
    a, b = (c for c, _ in configs)
    assert a.parameters.temperature == 0.2 and a.parameters.seed == 7 and a.context_size == 1024
    assert a.template.use_tokenizer_template and a.options == ["delay:0", "flag"] and a.roles == {"user": "User:"}
    assert b.name == "b"


def test_unknown_keys_are_kept_and_warned_once(tmp_path: Path, registry: Registry,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """A key nothing reads is warned about once; a key the model's backend declares (``yaml_fields``) is not."""
    write(tmp_path, "x.yaml", "name: x\nbackend: fake\nmystery_knob: 3\nfake_knob: 4\n")
    with caplog.at_level(logging.WARNING):
        catalog = Catalog(tmp_path, registry).load()
        Catalog(tmp_path, registry).load()
    assert catalog.entries["x"].config.model_extra == {"mystery_knob": 3, "fake_knob": 4}
    assert sum("mystery_knob" in r.message for r in caplog.records) == 1
    assert not any("fake_knob" in r.message for r in caplog.records)


def test_broken_yaml_names_file_and_line_and_others_still_load(tmp_path: Path) -> None:
    write(tmp_path, "bad.yaml", "name: bad\nparameters: [unclosed\n")
    write(tmp_path, "good.yaml", "name: good\nbackend: fake\n")
    configs, problems = load_folder(tmp_path)
    assert [c.name for c, _ in configs] == ["good"]
    assert problems[0].file == "bad.yaml" and "YAML syntax error at line" in problems[0].message


def test_type_errors_name_the_field(tmp_path: Path) -> None:
    write(tmp_path, "typed.yaml", "name: t\ncontext_size: lots\nparameters: {temperature: hot}\n")
    _, problems = load_folder(tmp_path)
    fields = {p.field for p in problems}
    assert fields == {"context_size", "parameters.temperature"}
    assert all(p.file == "typed.yaml" and p.model == "t" for p in problems)
    assert "valid integer" in str(problems[0]) or "valid number" in str(problems[0])


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.gguf", "sub/../../x.gguf"])
def test_paths_leaving_the_models_folder_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(ValueError, match="absolute path|leaves the models folder"):
        resolve_model_file(tmp_path, path)


def test_traversal_makes_the_model_unusable_with_a_clear_problem(tmp_path: Path, registry: Registry) -> None:
    write(tmp_path, "evil.yaml", "name: evil\nbackend: fake\nparameters: {model: ../../etc/passwd}\n")
    write(tmp_path, "fine.yaml", "name: fine\nbackend: fake\n")
    catalog = Catalog(tmp_path, registry).load()
    assert not catalog.entries["evil"].usable
    assert "leaves the models folder" in catalog.entries["evil"].problems[0]
    assert catalog.entries["fine"].usable


def test_bare_model_file_is_served_under_its_stem(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "tiny-model.gguf").write_bytes(b"GGUF")
    (tmp_path / "named.gguf").write_bytes(b"GGUF")
    write(tmp_path, "named.yaml", "name: my-named\nbackend: fake\nparameters: {model: named.gguf}\n")
    configs, _ = load_folder(tmp_path)
    names = sorted(c.name for c, _ in configs)
    assert names == ["my-named", "tiny-model"]


def test_missing_and_unknown_backends_are_model_problems(tmp_path: Path, registry: Registry) -> None:
    write(tmp_path, "m.yaml", "- {name: v, backend: vllm}\n- {name: u, backend: warp-drive}\n- {name: ok, backend: Fake_Backend}\n")
    catalog = Catalog(tmp_path, registry).load()
    assert "pip install localai-vllm" in catalog.entries["v"].problems[0]
    assert "installed backends: fake" in catalog.entries["u"].problems[0]
    assert catalog.entries["ok"].backend.name == "fake"  # type: ignore[union-attr]


def test_bad_options_are_reported_against_the_model(tmp_path: Path, registry: Registry) -> None:
    write(tmp_path, "o.yaml", "name: o\nbackend: fake\noptions: [warp:9]\n")
    entry = Catalog(tmp_path, registry).load().entries["o"]
    assert entry.problems == ["options: unknown option 'warp'"]


def test_backend_chosen_by_file_suffix(tmp_path: Path, registry: Registry) -> None:
    write(tmp_path, "s.yaml", "name: s\nparameters: {model: weights.fake}\n")
    assert Catalog(tmp_path, registry).load().entries["s"].backend.name == "fake"  # type: ignore[union-attr]


def test_duplicate_names_keep_the_first(tmp_path: Path, registry: Registry) -> None:
    write(tmp_path, "1.yaml", "name: d\nbackend: fake\ndescription: first\n")
    write(tmp_path, "2.yaml", "name: d\nbackend: fake\ndescription: second\n")
    catalog = Catalog(tmp_path, registry).load()
    assert catalog.entries["d"].config.description == "first"
    assert any("duplicate model name" in p.message for p in catalog.problems)


def test_out_of_range_sampling_defaults_are_problems_naming_the_field(tmp_path: Path) -> None:
    """The same value rules as request bodies: an engine never sees a penalty it would reject."""
    write(tmp_path, "pen.yaml", "name: p\nparameters: {repeat_penalty: 0, presence_penalty: 3, temperature: 1.0}\n")
    _, problems = load_folder(tmp_path)
    assert {p.field for p in problems} == {"parameters.repeat_penalty", "parameters.presence_penalty"}


def test_passthrough_spec_keeps_engine_flags_and_still_refuses_unknown_names() -> None:
    from localai.options import OptionSpec, parse_option_list

    specs = [OptionSpec("--*", "str", "engine flags"), OptionSpec("kv_cache_space", "int", "GiB")]
    parsed = parse_option_list(["--max-num-seqs=8", "--enforce-eager", "kv_cache_space:2"], specs)
    assert parsed == {"--*": ["--max-num-seqs=8", "--enforce-eager"], "kv_cache_space": 2}
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        parse_option_list(["bogus:1"], specs)
    with pytest.raises(ValueError, match="unknown option '--x'"):
        parse_option_list(["--x"], [OptionSpec("a", "int", "")])


def test_an_option_the_engine_cannot_honour_here_is_refused_never_ignored() -> None:
    """``supported`` set (the reason it has no effect here): given in the YAML or by its env var, it is refused;
    left out, its default does not trip it."""
    from localai.options import OptionSpec, parse_option_list

    specs = [OptionSpec("grpc_servers", "str", "RPC", env="X_RPC", supported="this build has no RPC backend"),
             OptionSpec("n_batch", "int", "batch", default=512)]
    assert parse_option_list([], specs, {}) == {"n_batch": 512}
    with pytest.raises(ValueError, match="option 'grpc_servers' is not supported: this build has no RPC backend"):
        parse_option_list(["grpc_servers:h:1"], specs)
    with pytest.raises(ValueError, match=r"from \$X_RPC is not supported"):
        parse_option_list([], specs, {"X_RPC": "h:1"})


@pytest.mark.parametrize(("entries", "environ", "message"), [
    (["n:0"], {}, r"option 'n': expected at least 1, got '0'"),
    (["share:1.5"], {}, r"option 'share': expected between 0 and 1, got '1.5'"),
    (["share:-0.1"], {}, r"option 'share': expected between 0 and 1"),
    ([], {"X_N": "0"}, r"option 'n' from \$X_N: expected at least 1"),
    (["cap:11"], {}, r"option 'cap': expected at most 10"),
])
def test_an_option_outside_its_bounds_is_refused_wherever_it_comes_from(entries: list[str], environ: dict[str, str],
                                                                         message: str) -> None:
    """One bounds rule for every backend's numbers, from the YAML or the environment, kept through the metadata
    a backend environment writes (the server parses an installed backend's options from that JSON)."""
    from localai.options import OptionSpec, parse_option_list

    specs = [OptionSpec("n", "int", "count", default=1, env="X_N", minimum=1),
             OptionSpec("share", "float", "fraction", minimum=0, maximum=1), OptionSpec("cap", "int", "cap", maximum=10)]
    assert parse_option_list(["n:1", "share:1", "share:0", "cap:10"], specs, {}) == {"n": 1, "share": 0.0, "cap": 10}
    for table in (specs, [OptionSpec.from_dict(s.to_dict()) for s in specs]):
        with pytest.raises(ValueError, match=message):
            parse_option_list(entries, table, environ)


class _PromptCacheBackend:
    """A backend declaring the prompt_cache capability (registration only: nothing loads)."""

    @hookimpl
    def register_backends(self, register: Any) -> None:
        register("cachey", capabilities=("completion", "prompt_cache"), description="declares prompt_cache")


def test_prompt_cache_path_is_resolved_for_backends_that_keep_one_and_refused_elsewhere(tmp_path: Path) -> None:
    """LocalAI's prompt_cache_path: made absolute inside the models folder for the worker, never ignored: a backend
    without the capability, or a path leaving the folder, makes the model unusable with the reason."""
    pm = PluginManager()
    pm.add_plugin(fake_backend, "fake")
    pm.add_plugin(_PromptCacheBackend(), "cachey")
    write(tmp_path, "m.yaml", "- {name: ok, backend: cachey, prompt_cache_path: cache/ok.bin, prompt_cache_all: true}\n"
                              "- {name: plain, backend: fake, prompt_cache_path: cache/p.bin}\n"
                              "- {name: out, backend: cachey, prompt_cache_path: ../p.bin}\n"
                              "- {name: none, backend: cachey}\n")
    catalog = Catalog(tmp_path, Registry(pm)).load()
    ok = catalog.entries["ok"]
    assert ok.usable, ok.problems
    config = ok.worker_config()
    assert config["prompt_cache_path"] == str(tmp_path.absolute() / "cache" / "ok.bin")
    assert config["prompt_cache_all"] is True and config["prompt_cache_ro"] is False
    assert "prompt_cache" not in ok.usecases()  # a capability, not something a model is used for
    assert catalog.entries["plain"].problems == [
        "prompt_cache_path: backend fake keeps no prompt cache file (backends that do: those declaring the "
        "prompt_cache capability, e.g. llama-cpp)"]
    assert "leaves the models folder" in catalog.entries["out"].problems[0]
    assert catalog.entries["none"].usable and catalog.entries["none"].worker_config()["prompt_cache_path"] is None
