"""Load-time options on the real model: KV cache types, flash attention, fit_params, RPC workers."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from localai.config import ModelConfig
from localai.testing import GGUF_NAME, ServerProcess, free_port, write_models
from localai.testing.fixtures import openai_client_fixture

PROMPT = "The three primary colors are"


def yaml(name: str, extra: str = "", context: int = 512) -> str:
    return (f"name: {name}\nbackend: llama-cpp\ncontext_size: {context}\nthreads: 1\n"
            f"parameters:\n  model: {GGUF_NAME}\n  temperature: 0\n{extra}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def rpc_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """Two ``localai worker llama-cpp-rpc`` processes on loopback."""
    log_dir = tmp_path_factory.mktemp("rpc")
    workers, logs = [], []
    ports: set[int] = set()
    while len(ports) < 2:  # free_port() may hand out the same free port twice
        ports.add(free_port())
    for i, port in enumerate(sorted(ports)):
        address = f"127.0.0.1:{port}"
        logs.append(log_dir / f"worker{i}.log")
        with open(logs[-1], "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "localai.cli", "worker", "llama-cpp-rpc", "--address", address,
                                     "--threads", "1"], stdout=log, stderr=subprocess.STDOUT)
        workers.append((address, proc))
    try:
        deadline = time.monotonic() + 20
        for (_, proc), log_path in zip(workers, logs):
            while b"endpoint" not in log_path.read_bytes():
                assert proc.poll() is None, f"RPC worker exited at start: {log_path.read_text()}"
                assert time.monotonic() < deadline, "RPC worker did not start"
                time.sleep(0.1)
        yield workers
    finally:
        for _, proc in workers:
            proc.terminate()
            proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, rpc_workers: list[tuple[str, subprocess.Popen[bytes]]]) -> Iterator[ServerProcess]:
    servers = ",".join(address for address, _ in rpc_workers)
    folder = write_models(tmp_path_factory.mktemp("load-models"), {
        "plain.yaml": yaml("plain", "options: ['repack:false']\n"),  # RPC devices hold plain layouts: compare like with like
        "q8.yaml": yaml("kv-q8", "cache_type_k: q8_0\ncache_type_v: q8_0\n"),
        "mixed.yaml": yaml("kv-mixed", "cache_type_k: q4_1\ncache_type_v: iq4_nl\nflash_attention: on\n"),
        "f32.yaml": yaml("kv-f32", "f16: false\nflash_attention: off\n"),
        "fa-off.yaml": yaml("kv-q4-fa-off", "cache_type_v: q4_0\nflash_attention: off\n"),
        "bad.yaml": yaml("kv-bad", "cache_type_k: q3_k\n"),
        "fit.yaml": yaml("fit-small", "options: ['fit_target:100000000', 'fit_ctx:256']\n", context=4096),
        "nofit.yaml": yaml("fit-off", "options: ['fit:off', 'fit_target:100000000', 'fit_ctx:256']\n", context=4096),
        "rpc.yaml": yaml("rpc", f"options: ['grpc_servers:{servers}']\n"),
        "rpc-down.yaml": yaml("rpc-down", f"options: ['rpc_servers:127.0.0.1:{free_port()}']\n"),
    })
    # llama.cpp's own load log (LOCALAI_ENGINE_VERBOSE) says which K and V cache types it allocated
    with ServerProcess(folder, env={"LOCALAI_ENGINE_VERBOSE": "1"}) as srv:
        yield srv


client = openai_client_fixture()


def complete(client: openai.OpenAI, model: str, prompt: str = PROMPT, max_tokens: int = 12) -> str:
    return client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0).choices[0].text


@pytest.mark.parametrize(("model", "k", "v"), [("kv-q8", "q8_0", "q8_0"), ("kv-mixed", "q4_1", "iq4_nl"),
                                               ("kv-f32", "f32", "f32")])
def test_cache_types_load_and_generate(client: openai.OpenAI, server: ServerProcess, model: str, k: str, v: str) -> None:
    """The model loads with the KV cache types its YAML names, as llama.cpp itself reports them, and generates."""
    text = complete(client, model)
    assert text.strip(), f"{model} generated nothing"
    assert re.search(rf"llama_kv_cache: size = .*K \({k}\): .*V \({v}\):", server.log(None)), \
        f"llama.cpp did not report a K {k} / V {v} cache for {model}"


def test_quantized_v_cache_without_flash_attention_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        complete(client, "kv-q4-fa-off")
    assert "cache_type_v q4_0" in err.value.message and "needs flash attention" in err.value.message


def test_unknown_cache_type_is_refused_with_the_list(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        complete(client, "kv-bad")
    assert "cache_type_k 'q3_k' is not supported" in err.value.message
    assert "q8_0" in err.value.message and "iq4_nl" in err.value.message


def test_fit_params_shrinks_the_context(client: openai.OpenAI) -> None:
    """With an impossible margin the context falls to fit_params_min_ctx: a 400-token prompt no longer fits."""
    long_prompt = "one two three four five six seven eight " * 50
    assert complete(client, "fit-off", long_prompt, max_tokens=1) is not None  # 4096 tokens of context: fits
    with pytest.raises(openai.BadRequestError) as err:
        complete(client, "fit-small", long_prompt, max_tokens=1)
    assert "256" in err.value.message


def test_fit_params_kwargs(tmp_path: Path) -> None:
    from localai.testing import default_gguf
    from localai_llama_cpp.params import llama_kwargs

    path = str(default_gguf())
    cfg = ModelConfig.model_validate({"name": "m", "context_size": 8192, "parameters": {"model": path}})
    assert llama_kwargs(cfg, path, {"fit_params": True, "fit_params_target": 0, "fit_params_min_ctx": 1024})["n_ctx"] == 8192
    assert llama_kwargs(cfg, path, {"fit_params": True, "fit_params_target": 10**8, "fit_params_min_ctx": 1024})["n_ctx"] == 1024
    assert llama_kwargs(cfg, path, {"fit_params": False, "fit_params_target": 10**8})["n_ctx"] == 8192


def test_rpc_workers_give_the_same_greedy_output(client: openai.OpenAI,
                                                 rpc_workers: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    before = [rss_mib(proc.pid) for _, proc in rpc_workers]
    local = complete(client, "plain", max_tokens=16)  # same unrepacked kernels as the RPC workers run
    remote = complete(client, "rpc", max_tokens=16)
    assert remote == local
    grown = [rss_mib(proc.pid) - b for (_, proc), b in zip(rpc_workers, before)]
    assert all(g > 20 for g in grown), f"the RPC workers did not receive layers (RSS grew by {grown} MiB)"


def test_unreachable_rpc_worker_is_a_clear_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        complete(client, "rpc-down")
    assert "not reachable" in err.value.message and "localai worker llama-cpp-rpc" in err.value.message
