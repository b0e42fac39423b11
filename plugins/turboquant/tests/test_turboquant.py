"""turboquant on the fork's own build: the turbo KV cache types in effect, their quality, and the refusals.

The engine lives in the backend's environment (``localai backends install turboquant`` builds the
llama-cpp-turboquant fork into it; scripts/test.sh installs it from the vendored source archive). Without
it these tests fail under LOCALAI_TEST_STRICT (scripts/test.sh) and skip otherwise, saying how to install it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from localai.config import ModelConfig
from localai.testing import GGUF_NAME, ServerProcess, default_gguf, write_models
from localai.testing.fixtures import engine_python_fixture, openai_client_fixture
from localai_llama_cpp import build
from localai_llama_cpp.options import cache_types_of
from localai_turboquant import engine
from localai_turboquant.options import is_turbo, parse

PROBE = Path(__file__).with_name("kv_probe.py")
# Bytes per KV element: f16, q8_0 (32-element blocks of 34 bytes), and the fork's 128-element blocks
# (ggml-common.h: turbo4 68 bytes, turbo3 50, turbo2 34).
BYTES = {"f16": 2.0, "q8_0": 34 / 32, "turbo4": 68 / 128, "turbo3": 50 / 128, "turbo2": 34 / 128}
# Teacher-forced top-1 agreement with f16 over 4 prompts x 32 greedy f16 tokens (measured here: q8_0 0.945,
# turbo4 0.859, turbo3 0.750, turbo2 0.539; docs/backends/llama-cpp.md#turboquant-pluginsturboquant). The base 270M
# model's flat distributions make near-ties common, so the floors sit about 0.1 under the measured figures.
AGREEMENT_FLOOR = {"q8_0": 0.85, "turbo4": 0.75, "turbo3": 0.65, "turbo2": 0.45}

engine_python = engine_python_fixture("turboquant", "llama_cpp, numpy, localai_turboquant", timeout=300)


@pytest.fixture(scope="module")
def probe(engine_python: str) -> dict[str, Any]:
    out = subprocess.run([engine_python, str(PROBE), str(default_gguf())], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=1))
    return result


def test_each_cache_type_is_in_effect_at_its_own_size(probe: dict[str, Any]) -> None:
    """The KV state for the same prompt shrinks f16 > q8_0 > turbo4 > turbo3 > turbo2, in the blocks' ratios."""
    sizes = {t: probe[t]["state_bytes"] for t in BYTES}
    assert len({probe[t]["tokens"] for t in BYTES}) == 1
    order = sorted(sizes, key=sizes.get, reverse=True)  # type: ignore[arg-type]
    assert order == list(BYTES), sizes
    for cache_type, per_element in BYTES.items():
        ratio = sizes[cache_type] / sizes["f16"]
        assert ratio == pytest.approx(per_element / BYTES["f16"], rel=0.03), (cache_type, ratio, sizes)


def test_turbo_caches_keep_greedy_decoding_close_to_f16(probe: dict[str, Any]) -> None:
    for cache_type, floor in AGREEMENT_FLOOR.items():
        assert probe[cache_type]["top1_agreement"] >= floor, (cache_type, probe[cache_type])
    # fewer bits, more drift: the agreement does not improve as the cache shrinks
    assert probe["turbo4"]["max_logit_diff"] > 0 and probe["turbo2"]["top1_agreement"] <= probe["turbo4"]["top1_agreement"]


def yaml(name: str, backend: str, extra: str = "") -> str:
    return (f"name: {name}\nbackend: {backend}\ncontext_size: 512\nthreads: 1\n"
            f"parameters:\n  model: {GGUF_NAME}\n  temperature: 0\n{extra}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_python: str) -> Iterator[ServerProcess]:
    folder = write_models(tmp_path_factory.mktemp("turbo-models"), {
        "t2.yaml": yaml("tq-turbo2", "turboquant", "cache_type_k: turbo2\ncache_type_v: turbo2\n"),
        "t3.yaml": yaml("tq-turbo3", "turboquant", "cache_type_k: turbo3\ncache_type_v: turbo3\n"),
        "t4.yaml": yaml("tq-turbo4", "turboquant", "cache_type_k: turbo4\ncache_type_v: turbo4\n"),
        "stock.yaml": yaml("llama-turbo3", "llama-cpp", "cache_type_k: turbo3\ncache_type_v: turbo3\n"),
        "libpath.yaml": yaml("tq-lib-path", "turboquant", "options: ['lib_path:/opt/fork/lib']\n"),
    })
    with ServerProcess(folder) as srv:
        yield srv


client = openai_client_fixture()


@pytest.mark.parametrize("model", ["tq-turbo2", "tq-turbo4"])
def test_turbo2_and_turbo4_serve_an_answer_that_runs_to_max_tokens(client: openai.OpenAI, model: str) -> None:
    r = client.completions.create(model=model, prompt="The three primary colors are", max_tokens=12, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "length" and r.usage is not None and r.usage.completion_tokens == 12
    assert r.choices[0].text.strip()
    again = client.completions.create(model=model, prompt="The three primary colors are", max_tokens=12, temperature=0,
                                      extra_body={"ignore_eos": True})
    assert again.choices[0].text == r.choices[0].text  # greedy on a turbo cache is repeatable


def test_turbo3_answers_through_all_three_apis(client: openai.OpenAI, server: ServerProcess) -> None:
    """The issue's walk: backend turboquant, cache_type_k/v turbo3, the default model, OpenAI, Anthropic, Responses."""
    import anthropic

    chat = client.chat.completions.create(model="tq-turbo3", messages=[{"role": "user", "content": "Name a color."}],
                                          max_tokens=8, temperature=0)
    assert chat.choices[0].message.content and chat.choices[0].finish_reason in ("stop", "length")
    claude = anthropic.Anthropic(base_url=server.url, api_key="none", _strict_response_validation=True)
    message = claude.messages.create(model="tq-turbo3", max_tokens=8, messages=[{"role": "user", "content": "Name a color."}])
    assert message.content and message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    response = client.responses.create(model="tq-turbo3", input="Name a color.", max_output_tokens=8, store=False)
    assert response.status in ("completed", "incomplete") and response.output_text


def test_stock_llama_cpp_refuses_turbo_types_and_names_the_backend(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        client.completions.create(model="llama-turbo3", prompt="Hi", max_tokens=2)
    assert "turbo3" in err.value.message and "backend: turboquant" in err.value.message
    assert "localai backends install turboquant" in err.value.message


def test_lib_path_is_refused_with_the_install_command(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        client.completions.create(model="tq-lib-path", prompt="Hi", max_tokens=2)
    assert "lib_path" in err.value.message and "localai backends install turboquant" in err.value.message


def test_a_stock_environment_says_how_to_install_the_fork() -> None:
    """The server's own environment has stock llama.cpp: turboquant is listed as unavailable, with the fix."""
    problem = engine.check()
    assert problem is not None and "stock llama.cpp" in problem and "localai backends install turboquant" in problem


def config(**fields: object) -> ModelConfig:
    return ModelConfig.model_validate({"name": "m", "backend": "turboquant", "parameters": {"model": "m.gguf"}, **fields})


def test_turbo_types_parse_and_need_flash_attention() -> None:
    assert parse([], config(cache_type_k="turbo2", cache_type_v="TURBO4_0")) is not None
    with pytest.raises(ValueError, match="needs flash attention"):
        parse([], config(cache_type_k="turbo3", cache_type_v="turbo3", flash_attention="off"))
    with pytest.raises(ValueError, match="not supported"):
        parse([], config(cache_type_k="turbo5"))


def test_the_forks_two_spellings_of_a_turbo_type_are_one_type() -> None:
    """``turbo3_0`` (ggml's type name) and ``turbo3`` (llama-server's) reach params, fit and the checks as one name."""
    assert cache_types_of(config(cache_type_k="TURBO3_0", cache_type_v="turbo4")) == ("turbo3", "turbo4")
    assert is_turbo("turbo3") and not is_turbo("q8_0")
    with pytest.raises(ValueError, match="needs flash attention"):  # the check sees the _0 spelling as turbo too
        parse([], config(cache_type_k="turbo2_0", flash_attention="off"))


def test_the_build_refuses_a_source_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    archive = tmp_path / "fork.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"int main(void) { return 0; }\n"
        info = tarfile.TarInfo("fork/main.c")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(SystemExit, match="does not match the pinned source"):
        build.fetch_source(str(archive), "0" * 64, "1" * 64, work)


def test_a_repacked_copy_of_the_pinned_source_is_accepted_by_its_tree_hash(tmp_path: Path) -> None:
    """The vendored archive re-packed (other compression, other bytes) still builds: its files are the pinned ones."""
    from localai.install.backends import gallery
    from localai.testing import missing

    vendored = os.environ.get("LOCALAI_TURBOQUANT_SOURCE") or ""
    if not Path(vendored).is_file():
        missing("the vendored llama-cpp-turboquant archive (LOCALAI_TURBOQUANT_SOURCE; scripts/test.sh sets it)")
    entry = gallery.find("cpu-turboquant", gallery.galleries())
    assert entry is not None
    pinned = entry.data["build"]["engine"]
    work = tmp_path / "work"
    work.mkdir()
    top, identity = build.fetch_source(vendored, pinned["sha256"], pinned["tree_sha256"], work)
    assert identity == "sha256:" + pinned["sha256"] and (top / "include" / "llama.h").is_file()
    repacked = tmp_path / "repacked.tar"
    with tarfile.open(repacked, "w") as tar:  # uncompressed: another archive, the same files
        tar.add(top, arcname="fork")
    again = tmp_path / "again"
    again.mkdir()
    top2, identity2 = build.fetch_source(str(repacked), pinned["sha256"], pinned["tree_sha256"], again)
    assert identity2 == identity and build.tree_sha256(top2) == pinned["tree_sha256"]
    (top2 / "src" / "llama.cpp").write_text("// changed\n")  # one changed file: refused
    changed = tmp_path / "changed.tar"
    with tarfile.open(changed, "w") as tar:
        tar.add(top2, arcname="fork")
    third = tmp_path / "third"
    third.mkdir()
    with pytest.raises(SystemExit, match="does not match the pinned source"):
        build.fetch_source(str(changed), pinned["sha256"], pinned["tree_sha256"], third)


def test_a_header_that_disagrees_with_the_bindings_fails_the_build_check(engine_python: str, tmp_path: Path) -> None:
    """The build's check on the installed bindings: the fork's headers pass (llama.h, and mtmd.h / mtmd-helper.h for
    images); one extra field in llama_context_params or mtmd_context_params, or one extra parameter of a bound
    function (patched copies), is refused, naming the struct or function and both figures."""
    site = Path(subprocess.run([engine_python, "-c", "import llama_cpp, os; print(os.path.dirname(os.path.dirname("
                                "llama_cpp.__file__)))"], capture_output=True, text=True, check=True).stdout.strip())
    pristine = tmp_path / "fork"
    (pristine / "ggml").mkdir(parents=True)
    shutil.copytree(site / "include", pristine / "include")
    shutil.copytree(site / "include", pristine / "ggml" / "include")
    work = tmp_path / "ok"
    work.mkdir()
    result = build.check_layout(site, pristine, work)
    assert {"llama_context_params", "llama_model_params", "mtmd_context_params", "mtmd_input_text"} <= set(result["structs"])
    assert {"llama_decode", "mtmd_tokenize", "mtmd_helper_eval_chunk_single"} <= set(result["functions"])
    assert result["headers"] == ["llama.h", "mtmd.h", "mtmd-helper.h"]

    def patched(name: str, header: str, anchor: str, extra: str) -> str:
        source = tmp_path / name
        shutil.copytree(pristine, source)
        text = (source / "include" / header).read_text()
        assert anchor in text, anchor
        (source / "include" / header).write_text(text.replace(anchor, anchor + extra, 1))
        (tmp_path / f"{name}-work").mkdir()
        with pytest.raises(SystemExit) as err:
            build.check_layout(site, source, tmp_path / f"{name}-work")
        assert "disagree with the engine's headers" in str(err.value)
        return str(err.value)

    message = patched("llama", "llama.h", "struct llama_context_params {\n        uint32_t n_ctx;",
                      "\n        uint32_t n_localai_extra;")
    assert "llama_context_params: size 136" in message and "size 144" in message
    message = patched("mtmd", "mtmd.h", "struct mtmd_context_params {\n    bool use_gpu;", "\n    int n_localai_extra;")
    assert "mtmd_context_params: size" in message and "llama_context_params" not in message
    message = patched("helper", "mtmd-helper.h", "MTMD_API int32_t mtmd_helper_eval_chunk_single(mtmd_context * ctx,",
                      " int n_localai_extra,")
    assert "mtmd_helper_eval_chunk_single(): the bindings pass 8 parameters, the headers declare 9" in message


def test_a_build_whose_type_ids_disagree_is_refused_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    marker = {"engine": engine.ENGINE, "commit": "x", "ggml_types": {"turbo2_0": 42, "turbo3_0": 45, "turbo4_0": 44}}
    monkeypatch.setattr(engine, "build_info", lambda: marker)
    with pytest.raises(RuntimeError, match="numbers turbo3 45, this plugin passes 43"):
        engine.type_id("turbo3")


def test_an_unreachable_source_url_says_how_to_build_offline(tmp_path: Path) -> None:
    """The pinned upstream URL when there is no network (here: a refused loopback port) gives the offline route."""
    with pytest.raises(SystemExit, match="could not download the engine source .*LOCALAI_TURBOQUANT_SOURCE=PATH"):
        build.fetch_source("http://127.0.0.1:9/fork.tar.gz", "0" * 64, None, tmp_path,
                           "give the source archive (or a source folder) with LOCALAI_TURBOQUANT_SOURCE=PATH")


def test_the_builds_cpu_flags_keep_amx_off_and_skip_native() -> None:
    flags = build.cmake_flags(["-DGGML_CUDA=ON"]).split()
    assert "-DGGML_NATIVE=OFF" in flags and "-DGGML_AMX_INT8=OFF" in flags and "-DGGML_AMX_TILE=OFF" in flags
    assert flags[-1] == "-DGGML_CUDA=ON"
