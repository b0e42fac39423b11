"""Gallery index format, URI schemes, config merge and name/path safety (no network, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from localai.install.models.index import Galleries, GalleryError, GalleryRef, parse_galleries, parse_index
from localai.install.models.merge import ApplyRequest, build_plan, deep_merge
from localai.install.models.paths import UnsafePath, check_model_name, target_path
from localai.install.models.sources import resolve

DATA = Path(__file__).parent / "data" / "gallery"


def local_gallery() -> Galleries:
    return Galleries([GalleryRef(name="localai", url=str(DATA / "localai-index.yaml"))])


def test_localai_index_entries_parse_with_anchors_merge_keys_and_unknown_fields():
    entries = parse_index((DATA / "localai-index.yaml").read_text(), GalleryRef(name="localai", url="x"))
    names = [e.name for e in entries]
    assert names == ["hy-mt2-1.8b-q4", "hy-mt2-1.8b-q8", "gemma-3-270m-it-qat", "openvino-all-MiniLM-L6-v2", "all-MiniLM-L6-v2"]
    q8 = entries[1]
    # `!!merge <<: *anchor` inherits the first entry's urls/license; its own files win
    assert q8.license == "apache-2.0" and q8.urls == entries[0].urls
    assert q8.files[0].filename.endswith("Q8_0.gguf") and q8.files[0].sha256.startswith("5c3fe0b1")
    gemma = entries[2]
    assert gemma.url == "github:mudler/LocalAI/gallery/gemma.yaml@master"
    assert gemma.overrides == {"parameters": {"model": "gemma-3-270m-it-qat-Q4_0.gguf"}}
    assert gemma.files[0].uri.startswith("huggingface://ggml-org/") and "gemma3" in gemma.tags
    assert gemma.icon.startswith("https://") and gemma.id == "localai@gemma-3-270m-it-qat"
    assert gemma.model_extra and gemma.model_extra.get("last_checked") == "2026-05-01"  # kept, not an error
    meta = gemma.metadata(installed=False)
    assert meta["name"] == gemma.name and meta["gallery"]["name"] == "localai" and meta["installed"] is False


def test_localai_base_config_and_entry_merge_into_the_model_yaml():
    g = local_gallery()
    entry = g.find("localai@gemma-3-270m-it-qat")
    plan = build_plan(ApplyRequest(id=entry.id, overrides={"context_size": 1024, "parameters": {"temperature": 0.1}}),
                      entry, Path("/tmp/models"))
    cfg = plan.config
    assert cfg["name"] == "gemma-3-270m-it-qat"                       # the entry's name
    assert cfg["backend"] == "llama-cpp" and cfg["mmap"] is True        # from the base config (gemma.yaml, read beside the index)
    assert cfg["parameters"] == {"model": "gemma-3-270m-it-qat-Q4_0.gguf", "temperature": 0.1}  # entry + request overrides
    assert cfg["context_size"] == 1024                                  # request override beats the base's 8192
    # LocalAI's Go templates cannot run under Jinja2: dropped, the model file's template is used, and it is said
    assert cfg["template"] == {"use_tokenizer_template": True}
    assert plan.notes and "Go template" in plan.notes[0]
    assert [f.filename for f in plan.files] == ["gemma-3-270m-it-qat-Q4_0.gguf"]


def test_request_name_and_config_file_win_and_overrides_replace_lists():
    g = Galleries([GalleryRef(name="t", url=str(DATA / "localai-index.yaml"))])
    entry = g.find("all-MiniLM-L6-v2")
    plan = build_plan(ApplyRequest(id="t@all-MiniLM-L6-v2", name="minilm", config_file={"threads": 2},
                                   overrides={"stopwords": ["x"]}), entry, Path("/tmp/models"))
    assert plan.name == "minilm" and plan.config["name"] == "minilm"
    assert plan.config["backend"] == "sentencetransformers" and plan.config["threads"] == 2
    assert plan.config["stopwords"] == ["x"]
    assert deep_merge({"a": [1, 2], "b": {"c": 1, "d": 2}}, {"a": [3], "b": {"c": 5}}) == {"a": [3], "b": {"c": 5, "d": 2}}


@pytest.mark.parametrize("filename", ["../../etc/x", "/etc/x", "a/../../x", "~/x", "sub/../../x", "models.yaml",
                                      "._gallery_other.yaml", "x.gguf.partial", "a\\..\\x", ""])
def test_malicious_file_names_are_refused(tmp_path, filename):
    with pytest.raises(UnsafePath):
        target_path(tmp_path, filename)


def test_file_names_inside_the_models_folder_are_accepted(tmp_path):
    assert target_path(tmp_path, "a.gguf") == tmp_path.resolve() / "a.gguf"
    assert target_path(tmp_path, "llama-cpp/models/x/a.gguf") == tmp_path.resolve() / "llama-cpp/models/x/a.gguf"


def test_a_symlinked_subfolder_leading_outside_is_refused(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "models" / "sub").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafePath, match="outside"):
        target_path(tmp_path / "models", "sub/x.gguf")


@pytest.mark.parametrize("name", ["a/b", "../x", "..", ".hidden", "a\\b", "", "x" * 201])
def test_model_names_that_are_not_plain_file_names_are_refused(name):
    with pytest.raises(UnsafePath):
        check_model_name(name)


@pytest.mark.parametrize("entry,match", [
    ({"name": "evil", "overrides": {"backend": "x"}, "files": [{"filename": "../../etc/x", "uri": "http://h/x"}]}, "leaves the models folder"),
    ({"name": "evil", "overrides": {"backend": "x"}, "files": [{"filename": "/etc/x", "uri": "http://h/x"}]}, "absolute"),
    ({"name": "org/evil", "overrides": {"backend": "x"}}, "path separator"),
    ({"name": "evil", "overrides": {"parameters": {"model": "../../etc/passwd"}}}, "leaves the models folder"),
    ({"name": "evil", "prompt_templates": [{"name": "../x", "content": "hi"}], "overrides": {"backend": "x"}}, "path separator"),
    ({"name": "empty"}, "installs nothing"),
    ({"name": "badsha", "files": [{"filename": "a.gguf", "uri": "http://h/a", "sha256": "nothex"}]}, "64 hex"),
])
def test_malicious_or_broken_entries_are_refused_before_anything_is_written(tmp_path, entry, match):
    [parsed] = parse_index(__import__("yaml").safe_dump([entry]))
    with pytest.raises(GalleryError, match=match):
        build_plan(ApplyRequest(id=parsed.name), parsed, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_uri_schemes_resolve_like_localai(monkeypatch):
    monkeypatch.delenv("HF_MIRROR", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert resolve("github:mudler/LocalAI/gallery/index.yaml@master") == \
        "https://raw.githubusercontent.com/mudler/LocalAI/master/gallery/index.yaml"
    assert resolve("github:o/r/p/f.yaml") == "https://raw.githubusercontent.com/o/r/main/p/f.yaml"
    assert resolve("huggingface://ggml-org/gemma-GGUF/g.gguf") == "https://huggingface.co/ggml-org/gemma-GGUF/resolve/main/g.gguf"
    assert resolve("hf://o/r@v1/sub/f.gguf") == "https://huggingface.co/o/r/resolve/v1/sub/f.gguf"
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert resolve("huggingface://o/r/f.gguf") == "http://127.0.0.1:9/o/r/resolve/main/f.gguf"
    assert resolve("https://huggingface.co/o/r/resolve/main/f") == "http://127.0.0.1:9/o/r/resolve/main/f"
    assert resolve("file:///tmp/x.yaml") == "/tmp/x.yaml"
    assert resolve("base.yaml", base="http://h:1/g/index.yaml") == "http://h:1/g/base.yaml"


def test_galleries_json_is_localai_format_and_errors_are_clear():
    refs = parse_galleries('[{"name": "a", "url": "github:o/r/i.yaml@main"}, {"name": "b", "url": "/tmp/i.yaml"}]')
    assert [(r.name, r.url) for r in refs] == [("a", "github:o/r/i.yaml@main"), ("b", "/tmp/i.yaml")]
    with pytest.raises(GalleryError, match="JSON"):
        parse_galleries("[{name: a}]")
    with pytest.raises(GalleryError, match="url"):
        parse_galleries('[{"name": "a"}]')
    with pytest.raises(GalleryError, match="duplicate"):
        parse_galleries('[{"name": "a", "url": "x"}, {"name": "a", "url": "y"}]')


def test_unknown_model_and_unknown_gallery_say_so():
    g = local_gallery()
    with pytest.raises(GalleryError, match="no model named 'nope'"):
        g.find("nope")
    with pytest.raises(GalleryError, match="no gallery named 'other'"):
        g.find("other@gemma-3-270m-it-qat")
    assert g.find("GEMMA-3-270M-IT-QAT").name == "gemma-3-270m-it-qat"  # case-insensitive, as LocalAI


def test_an_unreachable_gallery_is_reported_not_raised_while_others_still_list(tmp_path):
    g = Galleries([GalleryRef(name="down", url="http://127.0.0.1:9/index.yaml"),
                   GalleryRef(name="localai", url=str(DATA / "localai-index.yaml"))])
    entries, errors = g.entries()
    assert len(entries) == 5 and len(errors) == 1 and "cannot reach 127.0.0.1:9" in errors[0]
