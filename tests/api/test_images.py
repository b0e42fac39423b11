"""The image routes' core logic (OpenAI shape, LocalAI extras, errors, url files, cancellation, 429).

Served by the test-only ``fake_image_backend`` (solid-colour PNGs whose colour hashes the inputs); the
diffusers backend's own tests (plugins/diffusers/tests) run the same routes on a real pipeline.
"""

from __future__ import annotations

import base64
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from localai.config import parse_yaml_file
from localai.durations import parse_duration
from localai.server.generated import GeneratedStore
from localai.testing import ServerProcess

TESTS_DIR = Path(__file__).parent.parent
KEY = "image-test-key"
ENV = {"LOCALAI_PLUGINS": "fake_image_backend,fake_backend",
       "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
MODELS = {
    "echo.yaml": "name: echo\nbackend: fake\n",  # a text model, listed first
    "paint.yaml": "name: paint\nbackend: fake-image\nstep: 3\ndiffusers:\n  cfg_scale: 5\n",
    "paint2i.yaml": "name: paint-img2img\nbackend: fake-image\ndiffusers:\n  img2img: true\n",
    "slow.yaml": "name: slow-paint\nbackend: fake-image\noptions: ['delay:0.1', 'queue_size:0']\n",
    "badsched.yaml": "name: bad-sched\nbackend: fake-image\ndiffusers:\n  scheduler_type: euler_x\n",
}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("images")
    folder = root / "models"
    folder.mkdir()
    for name, text in MODELS.items():
        (folder / name).write_text(text)
    log = root / "backend.log"
    with ServerProcess(folder, env={**ENV, "FAKE_BACKEND_LOG": str(log)}, args=["--api-key", KEY]) as srv:
        srv.backend_log = log  # type: ignore[attr-defined]
        yield srv


def post(srv: ServerProcess, body: dict, path: str = "/v1/images/generations", **kw: object) -> httpx.Response:
    return httpx.post(srv.url + path, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60, **kw)


def backend_log(srv: ServerProcess) -> str:
    path: Path = srv.backend_log  # type: ignore[attr-defined]
    return path.read_text() if path.exists() else ""


def client(srv: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, _strict_response_validation=True, max_retries=0)


def test_llmstack_exact_request(server: ServerProcess) -> None:
    """LLMStack sends only prompt and size, no model, and decodes data[i]["b64_json"] as PNG."""
    r = post(server, {"prompt": "a lighthouse at dusk", "size": "256x256"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["created"], int)
    assert len(body["data"]) == 1
    item = body["data"][0]
    assert png_size(base64.b64decode(item["b64_json"])) == (256, 256)
    assert item["url"].startswith(server.url + "/generated-images/") and item["url"].endswith(".png")
    # no model named: the first image model (not the text model listed before it), with its step and cfg_scale
    assert "generated paint n=1 256x256 steps=3 prompt='a lighthouse at dusk'" in backend_log(server)
    assert "guidance=5.0" in backend_log(server)


def test_sdk_strict_b64_and_url(server: ServerProcess) -> None:
    c = client(server)
    b64 = c.images.generate(model="paint", prompt="red", size="64x64", n=2, response_format="b64_json")
    assert [d.url for d in b64.data] == [None, None]
    assert [png_size(base64.b64decode(d.b64_json)) for d in b64.data] == [(64, 64), (64, 64)]
    urls = c.images.generate(model="paint", prompt="red", size="64x64", n=2, response_format="url")
    assert [d.b64_json for d in urls.data] == [None, None]
    fetched = [httpx.get(d.url, headers={"Authorization": f"Bearer {KEY}"}) for d in urls.data]
    assert [f.status_code for f in fetched] == [200, 200]
    assert fetched[0].headers["content-type"] == "image/png"
    # same inputs, same seed default in the fake: the url form holds the same bytes as the b64 form
    assert [f.content for f in fetched] == [base64.b64decode(d.b64_json) for d in b64.data]
    assert len({d.url for d in urls.data}) == 2
    unauthorised = httpx.get(urls.data[0].url)
    assert unauthorised.status_code == 401
    assert unauthorised.json()["error"]["code"] == "invalid_api_key"


def test_seed_negative_prompt_and_step_reach_the_backend(server: ServerProcess) -> None:
    def image(**body: object) -> bytes:
        r = post(server, {"model": "paint", "size": "32x32", "response_format": "b64_json", **body})
        assert r.status_code == 200, r.text
        return base64.b64decode(r.json()["data"][0]["b64_json"])

    a = image(prompt="a cat|blurry, dark", seed=7)
    assert "prompt='a cat' negative='blurry, dark' seed=7" in backend_log(server)
    assert image(prompt="a cat|blurry, dark", seed=7) == a
    assert image(prompt="a cat|blurry, dark", seed=8) != a
    assert image(prompt="a cat", seed=7) != a
    assert image(prompt="a cat|blurry, dark", seed=7, step=9) != a
    assert "steps=9" in backend_log(server)
    # quality, style, user and unknown fields are accepted
    assert image(prompt="a cat|blurry, dark", seed=7, quality="hd", style="vivid", user="u", whatever=1) == a


def test_n_images_differ_by_seed(server: ServerProcess) -> None:
    r = post(server, {"model": "paint", "prompt": "x", "n": 3, "seed": 1, "size": "16x8", "response_format": "b64_json"})
    images = [base64.b64decode(d["b64_json"]) for d in r.json()["data"]]
    assert [png_size(i) for i in images] == [(16, 8)] * 3
    assert len(set(images)) == 3


@pytest.mark.parametrize("body,param", [
    ({"size": "100x100"}, "size"),  # not a multiple of 8
    ({"size": "0x64"}, "size"),
    ({"size": "-8x64"}, "size"),
    ({"size": "big"}, "size"),
    ({"size": "2048x64"}, "size"),  # over the model's limit (1024)
    ({"n": 11}, "n"),
    ({"n": 0}, "n"),
    ({"prompt": ""}, "prompt"),
    ({"response_format": "jpeg"}, "response_format"),
    ({"output_format": "webp"}, "output_format"),
    ({"step": 0}, "step"),
])
def test_bad_fields_are_400_naming_the_field(server: ServerProcess, body: dict, param: str) -> None:
    r = post(server, {"model": "paint", "prompt": "x", **body})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert param in err["message"]


def test_text_model_named_is_400(server: ServerProcess) -> None:
    r = post(server, {"model": "echo", "prompt": "x"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "model" and "does not support image" in r.json()["error"]["message"]


def test_unknown_model_is_404(server: ServerProcess) -> None:
    r = post(server, {"model": "nope", "prompt": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_bad_scheduler_refused_at_config_load(server: ServerProcess) -> None:
    assert "bad-sched" not in [m.id for m in client(server).models.list().data]
    assert "unknown scheduler_type 'euler_x'; accepted: ddim" in server.log()


def test_no_image_model_is_404(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "echo.yaml").write_text("name: echo\nbackend: fake\n")
    with ServerProcess(folder, env=ENV) as srv:
        r = httpx.post(srv.url + "/v1/images/generations", json={"prompt": "x"}, timeout=30)
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "model_not_found"
        assert "image" in r.json()["error"]["message"]
        with pytest.raises(openai.NotFoundError):
            openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0).images.generate(prompt="x")


def test_edits_need_an_img2img_model(server: ServerProcess) -> None:
    c = client(server)
    image = ("in.png", base64.b64decode(post(server, {"model": "paint", "prompt": "in", "size": "32x32",
                                                       "response_format": "b64_json"}).json()["data"][0]["b64_json"]), "image/png")
    with pytest.raises(openai.BadRequestError) as exc:
        c.images.edit(model="paint", image=image, prompt="make it blue")
    assert "does not support image input" in str(exc.value) and "img2img" in str(exc.value)
    edited = c.images.edit(model="paint-img2img", image=image, prompt="make it blue", size="32x32", response_format="b64_json")
    assert png_size(base64.b64decode(edited.data[0].b64_json)) == (32, 32)
    varied = c.images.create_variation(model="paint-img2img", image=image, n=2, size="32x32", response_format="url")
    assert len(varied.data) == 2 and all(d.url for d in varied.data)
    with pytest.raises(openai.BadRequestError) as exc:
        c.images.edit(model="paint-img2img", image=image, mask=image, prompt="x")
    assert exc.value.body["param"] == "mask"  # type: ignore[index]
    # LocalAI's generations with file: image-to-image too
    inline = post(server, {"model": "paint-img2img", "prompt": "p", "file": base64.b64encode(image[1]).decode(), "size": "32x32"})
    assert inline.status_code == 200, inline.text
    assert post(server, {"model": "paint-img2img", "prompt": "p", "file": "%%%"}).json()["error"]["param"] == "file"


def test_disconnect_cancels_the_generation(server: ServerProcess) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/images/generations", json={"model": "slow-paint", "prompt": "long", "step": 200},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=1.5)
    deadline = time.monotonic() + 10
    while "cancelled slow-paint" not in backend_log(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    line = [ln for ln in backend_log(server).splitlines() if ln.startswith("cancelled slow-paint")][-1]
    assert int(line.split("step ")[1].split("/")[0]) < 100  # stopped long before its 200 steps
    r = post(server, {"model": "slow-paint", "prompt": "short", "step": 1, "size": "8x8"})
    assert r.status_code == 200  # the model is free again


def test_queue_full_is_429(server: ServerProcess) -> None:
    results: list[httpx.Response] = []
    first = threading.Thread(target=lambda: results.append(post(server, {"model": "slow-paint", "prompt": "a", "step": 20})))
    first.start()
    headers = {"Authorization": f"Bearer {KEY}"}

    def running() -> bool:  # the first request holds the model's only place (queue_size 0)
        r = httpx.get(server.url + "/backend/monitor", params={"model": "slow-paint"}, headers=headers, timeout=10)
        return r.status_code == 200 and r.json()["models"][0]["in_flight"] >= 1

    deadline = time.monotonic() + 30
    while not running():
        assert time.monotonic() < deadline, "the first request never started"
        time.sleep(0.05)
    second = post(server, {"model": "slow-paint", "prompt": "b", "step": 1})
    first.join()
    assert results[0].status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "queue_full" and second.headers["retry-after"]


def test_unknown_generated_file_is_404(server: ServerProcess) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(server.url + "/generated-images/" + "A" * 32 + ".png", headers=headers).status_code == 404
    assert httpx.get(server.url + "/generated-images/..%2Fpaint.yaml", headers=headers).status_code == 404


def test_generated_store_cleans_up_by_count_and_age(tmp_path: Path) -> None:
    store = GeneratedStore(tmp_path, max_age=None, max_files=3)
    names = []
    for i in range(5):
        names.append(store.save_png(b"png%d" % i))
        os.utime(tmp_path / names[-1], (1000 + i, 1000 + i))  # distinct ages, oldest first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[-3:])
    assert all(len(n) > 30 for n in names) and len(set(names)) == 5
    aged = GeneratedStore(tmp_path, max_age=60, max_files=None)
    fresh = aged.save_png(b"new")
    assert [p.name for p in tmp_path.iterdir()] == [fresh]  # the others are decades old
    assert aged.file(fresh) is not None and aged.file("../" + fresh) is None
    assert parse_duration("24h") == 86400 and parse_duration("30m") == 1800 and parse_duration("0") == 0


def test_diffusers_block_validated_at_config_load(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("name: sd\nbackend: diffusers\nstep: 25\nlow_vram: true\nf16: false\n"
                    "diffusers:\n  pipeline_type: StableDiffusionPipeline\n  scheduler_type: k_dpmpp_2m\n  cfg_scale: 7\n")
    (cfg,), problems = parse_yaml_file(path)
    assert not problems
    assert (cfg.step, cfg.low_vram, cfg.diffusers.scheduler_type, cfg.diffusers.cfg_scale) == (25, True, "k_dpmpp_2m", 7)
    path.write_text("name: sd\nbackend: diffusers\ndiffusers:\n  pipeline_type: StableDiffusionPipelne\n")
    configs, problems = parse_yaml_file(path)
    assert not configs and problems[0].field == "diffusers.pipeline_type"
    assert "StableDiffusionPipeline" in problems[0].message and "AutoPipelineForText2Image" in problems[0].message


def test_replicas_sharing_the_generated_folder_serve_each_others_images(tmp_path: Path) -> None:
    """Replicas behind a balancer set one --generated-content-path on a shared volume (docs/replicas.md): the
    ``url`` one replica answers with is served by the others."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "paint.yaml").write_text(MODELS["paint.yaml"])
    args = ["--generated-content-path", str(tmp_path / "shared-images")]
    with ServerProcess(folder, data_path=tmp_path / "data-a", env=ENV, args=args) as a, \
            ServerProcess(folder, data_path=tmp_path / "data-b", env=ENV, args=args) as b:
        r = httpx.post(a.url + "/v1/images/generations", json={"prompt": "a lighthouse", "size": "256x256"}, timeout=60)
        assert r.status_code == 200, r.text
        name = r.json()["data"][0]["url"].rsplit("/", 1)[1]
        got = httpx.get(f"{b.url}/generated-images/{name}", timeout=30)
        assert got.status_code == 200 and png_size(got.content) == (256, 256)
        assert got.content == base64.b64decode(r.json()["data"][0]["b64_json"])
