"""The diffusers backend end to end: a tiny Stable Diffusion pipeline (random weights, saved with
``save_pretrained``, loaded through the plugin's real ``from_pretrained`` path) behind a real server.

The images are noise; what is pinned is everything around them: PNGs of the asked size, ``n``, seeds,
negative prompts, steps, both response forms, LLMStack's request and parser, the SDK in strict mode,
cancellation, image-to-image, and the errors.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time

import httpx
import openai
import pytest
from localai.testing import ServerProcess
from PIL import Image

pytestmark = pytest.mark.engine

KEY = "diffusers-test-key"  # the server fixture's --api-key (conftest.py)
AUTH = {"Authorization": f"Bearer {KEY}"}


def generate(server: ServerProcess, timeout: float = 300, **body: object) -> httpx.Response:
    return httpx.post(server.url + "/v1/images/generations", json=body, headers=AUTH, timeout=timeout)


def b64_images(response: httpx.Response) -> list[bytes]:
    assert response.status_code == 200, response.text
    return [base64.b64decode(d["b64_json"]) for d in response.json()["data"]]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def sdk(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, _strict_response_validation=True, max_retries=0, timeout=300)


def test_registration_imports_no_engine() -> None:
    code = ("import sys, localai_diffusers.plugin, localai_diffusers.options, localai_diffusers.schedulers; "
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'PIL') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_llmstack_exact_request(server: ServerProcess) -> None:
    """LLMStack's LocalAI image processor: ``{"prompt", "size"}`` only, 60 s timeout, PNGs read from b64_json."""
    response = httpx.post(server.url + "/v1/images/generations", json={"prompt": "a red fox in the snow", "size": "256x256"},
                          headers=AUTH, timeout=120)  # LLMStack waits 60 s; this shared 2-core machine may be slower
    assert response.status_code == 200, response.text
    images = [base64.b64decode(item["b64_json"]) for item in response.json()["data"]]  # what LLMStack does
    assert len(images) == 1
    assert decode(images[0]).size == (256, 256)
    assert response.json()["data"][0]["url"].endswith(".png")  # both forms when response_format is absent
    assert "model 'tiny-sd': 1 image(s) 256x256, 2 steps" in server.log()  # the first image model, its YAML step


def test_sdk_strict_both_formats_and_url_auth(server: ServerProcess) -> None:
    client = sdk(server)
    as_b64 = client.images.generate(model="tiny-sd", prompt="a boat", size="64x48", n=2, response_format="b64_json",
                                    extra_body={"seed": 5})
    assert len(as_b64.data) == 2 and all(d.url is None for d in as_b64.data)
    pngs = [base64.b64decode(d.b64_json or "") for d in as_b64.data]
    assert [decode(p).size for p in pngs] == [(64, 48), (64, 48)]
    assert pngs[0] != pngs[1]  # image i uses seed + i
    as_url = client.images.generate(model="tiny-sd", prompt="a boat", size="64x48", n=2, response_format="url",
                                    extra_body={"seed": 5})
    assert all(d.b64_json is None and d.url for d in as_url.data)
    fetched = [httpx.get(d.url or "", headers=AUTH) for d in as_url.data]
    assert [f.status_code for f in fetched] == [200, 200]
    assert [f.content for f in fetched] == pngs  # same seed, same bytes, whichever form
    assert httpx.get(as_url.data[0].url or "").status_code == 401


def test_seed_negative_prompt_and_step(server: ServerProcess) -> None:
    base = {"model": "tiny-sd", "size": "64x64", "response_format": "b64_json"}
    first = b64_images(generate(server, prompt="a house|fog", seed=11, **base))[0]
    assert b64_images(generate(server, prompt="a house|fog", seed=11, **base))[0] == first
    assert b64_images(generate(server, prompt="a house|fog", seed=12, **base))[0] != first
    assert b64_images(generate(server, prompt="a house|rain", seed=11, **base))[0] != first  # negative prompt counts
    assert b64_images(generate(server, prompt="a house", seed=11, **base))[0] != first
    assert b64_images(generate(server, prompt="a house|fog", seed=11, step=3, **base))[0] != first
    assert "1 image(s) 64x64, 3 steps (4 denoising calls), seed 11" in server.log()  # PNDM adds one call


def test_client_disconnect_cancels_between_steps(server: ServerProcess) -> None:
    b64_images(generate(server, model="tiny-sd", prompt="warm up", size="8x8", step=1))  # loaded: the timeout hits denoising
    # ~30 s of denoising on a fast machine (400 steps at 256x256 took under 4 s): the client gives up long before
    with pytest.raises(httpx.ReadTimeout):
        generate(server, timeout=4, model="tiny-sd", prompt="slow", size="512x512", step=999, seed=1)
    deadline = time.monotonic() + 60
    while "model 'tiny-sd': generation cancelled after" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    line = [ln for ln in server.log().splitlines() if "generation cancelled after" in ln][-1]
    assert int(line.split("cancelled after ")[1].split()[0]) < 999
    started = time.monotonic()
    assert decode(b64_images(generate(server, model="tiny-sd", prompt="next", size="32x32", step=1))[0]).size == (32, 32)
    assert time.monotonic() - started < 60  # the pipeline was freed, not still denoising 999 steps


def test_img2img_edits_and_variations(server: ServerProcess) -> None:
    client = sdk(server)
    source = b64_images(generate(server, model="tiny-sd", prompt="source", size="64x64", seed=1))[0]
    image = ("source.png", source, "image/png")
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.edit(model="tiny-sd", image=image, prompt="bluer")
    assert "does not support image input" in str(refused.value)
    edited = client.images.edit(model="tiny-sd-img2img", image=image, prompt="bluer", response_format="b64_json")
    assert decode(base64.b64decode(edited.data[0].b64_json or "")).size == (64, 64)  # the input's size
    resized = client.images.edit(model="tiny-sd-img2img", image=image, prompt="bluer", size="32x32", response_format="b64_json")
    assert decode(base64.b64decode(resized.data[0].b64_json or "")).size == (32, 32)
    varied = client.images.create_variation(model="tiny-sd-img2img", image=image, n=2, response_format="b64_json")
    assert len(varied.data) == 2
    with pytest.raises(openai.BadRequestError) as unreadable:
        client.images.edit(model="tiny-sd-img2img", image=("x.png", b"not an image", "image/png"), prompt="x")
    assert "not a readable" in str(unreadable.value)


def test_errors(server: ServerProcess) -> None:
    odd = generate(server, model="tiny-sd", prompt="x", size="60x64")
    assert odd.status_code == 400 and odd.json()["error"]["param"] == "size"
    huge = generate(server, model="tiny-sd", prompt="x", size="4096x4096")
    assert huge.status_code == 400 and "2048" in huge.json()["error"]["message"]
    assert generate(server, model="tiny-sd", prompt="x", n=11).json()["error"]["param"] == "n"
    too_many = generate(server, model="tiny-sd", prompt="x", size="8x8", step=1000)  # PNDM offsets by 1: 999 at most
    assert too_many.status_code == 400 and "at most 999" in too_many.json()["error"]["message"], too_many.text
    offline = generate(server, model="hub-sd", prompt="x")
    assert offline.status_code == 500
    message = offline.json()["error"]["message"]
    assert "hub-sd" in message and "someorg/not-downloaded-sd" in message and "hub" in message
    assert "bad-sd" not in [m["id"] for m in httpx.get(server.url + "/v1/models", headers=AUTH).json()["data"]]
    assert "unknown pipeline_type 'StableDiffusionPipelin'; accepted: AutoPipelineForText2Image" in server.log(tail=None)


def test_every_scheduler_name_builds(engine_python: str) -> None:
    """Every name core accepts at config load maps to a diffusers scheduler (k_: Karras sigmas) in the engine env."""
    code = """
from diffusers import PNDMScheduler
from localai.config import KARRAS_SCHEDULER_TYPES, SCHEDULER_TYPES
from localai_diffusers.schedulers import make_scheduler
base = PNDMScheduler()
for name in SCHEDULER_TYPES + KARRAS_SCHEDULER_TYPES:
    s = make_scheduler(name, base)
    assert getattr(s.config, "use_karras_sigmas", False) == name.startswith("k_"), name
print("ok")
"""
    out = subprocess.run([engine_python, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
