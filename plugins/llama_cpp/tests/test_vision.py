"""Images through every API on llama-cpp with an ``mmproj:`` (the tiny Gemma 3 vision test model), and every bad
image input answered 400 in the API's own error shape, naming the content part, with the worker still serving.

URL images come from an HTTP server on loopback: the main server runs with ``--allow-private-urls`` (as a user
serving local files would); a second one runs with the defaults and must refuse the same URL before connecting.
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml
from localai.testing import GGUF_NAME, ServerProcess, engine_python_or_skip, worker_pids, write_models
from localai.testing.conformance.vision import RED, SMALL_BLUE, chat
from localai.testing.models import gemma_vision

pytestmark = pytest.mark.engine

RED_BYTES = base64.b64decode(RED.split(",", 1)[1])
MODEL = "gemma-vision"
YAML = (f"name: {MODEL}\nbackend: llama-cpp\ncontext_size: 2048\nparallel: 2\nmmproj: mmproj.gguf\n"
        f"options: ['repack:false']\nparameters:\n  model: {GGUF_NAME}\n  temperature: 0\n")


def png(size: tuple[int, int], seed: int = 3) -> bytes:
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def solid(size: tuple[int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, "green").save(buf, "PNG")
    return buf.getvalue()


class Images(http.server.BaseHTTPRequestHandler):
    """/red.png, /hop/N (N redirects, then the image), /big (a 400x400 noise PNG), /slow, /text, /missing."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        Images.hits.append(self.path)
        if self.path.startswith("/hop/"):
            n = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hop/{n - 1}" if n > 1 else "/red.png")
            self.end_headers()
            return
        if self.path == "/slow":
            time.sleep(3)
        body, kind = {"/red.png": (RED_BYTES, "image/png"), "/slow": (RED_BYTES, "image/png"),
                      "/big": (png((400, 400)), "image/png"), "/text": (b"hello", "text/plain")}.get(self.path, (b"", ""))
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", kind or "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Images)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mmproj = gemma_vision(engine_python_or_skip("transformers"))[1]
    models = write_models(tmp_path_factory.mktemp("vision-models"), {
        f"{MODEL}.yaml": YAML,
        "text-only.yaml": f"name: text-only\nbackend: llama-cpp\ncontext_size: 512\nparameters:\n  model: {GGUF_NAME}\n",
    })
    (models / "mmproj.gguf").symlink_to(mmproj)
    return models


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def gallery(folder: Path) -> Path:
    """A gallery (file:// index) offering the vision model the way LocalAI's gallery lists one: both files, and the
    YAML naming the projector."""
    gguf, mmproj = (folder / GGUF_NAME).resolve(), (folder / "mmproj.gguf").resolve()
    index = folder.parent / "gallery-index.yaml"
    index.write_text(yaml.safe_dump([{
        "name": "gemma-vision-gallery", "description": "Gemma 3 270M with a test vision tower",
        "overrides": {"backend": "llama-cpp", "mmproj": "gv/mmproj-f32.gguf", "context_size": 1024,
                      "parameters": {"model": "gv/gemma.gguf", "temperature": 0}},
        "files": [{"filename": "gv/gemma.gguf", "uri": gguf.as_uri(), "sha256": sha256(gguf)},
                  {"filename": "gv/mmproj-f32.gguf", "uri": mmproj.as_uri(), "sha256": sha256(mmproj)}]}]))
    return index


@pytest.fixture(scope="module")
def server(folder: Path, gallery: Path) -> Iterator[ServerProcess]:
    """Private URLs allowed; small limits so each one can be crossed: 300,000 pixels, 0.1 MiB, 2 images, 1 s."""
    args = ["--allow-private-urls", "--image-max-pixels", "300000", "--image-max-size", "0.1", "--image-max-count", "2",
            "--image-fetch-timeout", "1s", "--galleries", json.dumps([{"name": "local", "url": gallery.as_uri()}])]
    with ServerProcess(folder, args=args) as srv:
        yield srv


@pytest.fixture(scope="module")
def oa(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120,
                       _strict_response_validation=True) as c:
        yield c


@pytest.fixture(scope="module")
def an(server: ServerProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0, timeout=120,
                             _strict_response_validation=True) as c:
        yield c


def ask(oa: openai.OpenAI, content: list[dict[str, Any]], model: str = MODEL) -> Any:
    return oa.chat.completions.create(model=model, max_tokens=8, temperature=0,
                                      messages=[{"role": "user", "content": content}])


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


TEXT = {"type": "text", "text": "Describe this image."}


def test_url_image_equals_the_same_image_inline(oa: openai.OpenAI, image_host: str) -> None:
    inline = ask(oa, [image(RED), TEXT])
    fetched = ask(oa, [image(f"{image_host}/red.png"), TEXT])
    redirected = ask(oa, [image(f"{image_host}/hop/3"), TEXT])  # three redirects: the limit
    assert fetched.choices[0].message.content == inline.choices[0].message.content
    assert redirected.choices[0].message.content == inline.choices[0].message.content
    assert fetched.usage.prompt_tokens == inline.usage.prompt_tokens == redirected.usage.prompt_tokens


def test_usage_counts_image_tokens_like_the_count_endpoint(an: anthropic.Anthropic) -> None:
    data = RED.split(",", 1)[1]
    messages: Any = [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
        {"type": "text", "text": "Describe this image."}]}]
    counted = an.messages.count_tokens(model=MODEL, messages=messages).input_tokens
    used = an.messages.create(model=MODEL, max_tokens=4, messages=messages, extra_body={"temperature": 0}).usage
    text_only = an.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Describe this image."}])
    prompt = used.input_tokens + (used.cache_read_input_tokens or 0)  # Anthropic counts cache reads apart
    assert counted == prompt == text_only.input_tokens + 66  # 64 embeddings + <start/end_of_image>


def test_anthropic_url_source_and_image_in_a_tool_result(an: anthropic.Anthropic, image_host: str) -> None:
    by_url = an.messages.create(model=MODEL, max_tokens=6, extra_body={"temperature": 0}, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": f"{image_host}/red.png"}}, {"type": "text", "text": "Describe this image."}]}])
    prompt = by_url.usage.input_tokens + (by_url.usage.cache_read_input_tokens or 0)
    assert prompt > 66 and by_url.stop_reason in ("end_turn", "max_tokens")
    tool_turn: Any = [
        {"role": "user", "content": "Take a photo."},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "camera", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "text", "text": "photo:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": RED.split(",", 1)[1]}}]}]}]
    tools: Any = [{"name": "camera", "description": "takes a photo", "input_schema": {"type": "object", "properties": {}}}]
    with_image = an.messages.count_tokens(model=MODEL, messages=tool_turn, tools=tools).input_tokens
    tool_turn[2]["content"][0]["content"] = [{"type": "text", "text": "photo:"}]
    without = an.messages.count_tokens(model=MODEL, messages=tool_turn, tools=tools).input_tokens
    assert with_image == without + 66


def openai_error(oa: openai.OpenAI, content: list[dict[str, Any]]) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as info:
        ask(oa, content)
    return info.value


@pytest.mark.parametrize("url, needle", [
    ("data:image/png;base64,%%%notbase64", "not valid base64"),
    ("data:image/png;base64," + base64.b64encode(b"GIF? no, just text").decode(), "not a readable image"),
    ("data:image/bmp;base64," + base64.b64encode(RED_BYTES).decode(), "media type 'image/bmp' is not supported"),
    ("data:image/jpeg;base64," + base64.b64encode(RED_BYTES).decode(), "is image/png but was declared image/jpeg"),
    ("data:image/png;base64," + base64.b64encode(png((400, 400))).decode(), "larger than 104857 bytes"),
    ("data:image/png;base64," + base64.b64encode(solid((60, 6000))).decode(), "limit is 300000 pixels"),
])
def test_bad_inline_images_are_400s_naming_the_part(oa: openai.OpenAI, url: str, needle: str) -> None:
    err = openai_error(oa, [TEXT, image(url)])
    body = err.body if isinstance(err.body, dict) else {}
    assert err.status_code == 400 and body.get("param") == "messages[0].content[1].image_url"
    assert needle in str(body.get("message")), body


@pytest.mark.parametrize("path, needle", [
    ("/missing", "answered HTTP 404"),
    ("/text", "not a readable image"),
    ("/big", "larger than 104857 bytes"),
    ("/slow", "took longer than 1s"),
    ("/hop/4", "more than 3 redirects"),
])
def test_bad_url_images_are_400s(oa: openai.OpenAI, image_host: str, path: str, needle: str) -> None:
    err = openai_error(oa, [image(image_host + path), TEXT])
    assert err.status_code == 400 and needle in str(err.body), err.body


def test_unreachable_url_is_a_400(oa: openai.OpenAI, server: ServerProcess) -> None:
    from localai.testing import free_port

    err = openai_error(oa, [image(f"http://127.0.0.1:{free_port()}/x.png"), TEXT])  # nothing listens there
    assert err.status_code == 400 and "cannot fetch" in str(err.body)
    err = openai_error(oa, [image("http://no-such-host.invalid/x.png"), TEXT])
    assert err.status_code == 400 and "cannot resolve no-such-host.invalid" in str(err.body)


def test_too_many_images_and_text_only_models(oa: openai.OpenAI, an: anthropic.Anthropic, server: ServerProcess) -> None:
    err = openai_error(oa, [image(RED), image(RED), image(RED), TEXT])
    assert err.code == "too_many_images" and isinstance(err.body, dict) and err.body["param"] == "messages[0].content[2].image_url"
    with pytest.raises(openai.BadRequestError) as info:
        ask(oa, [image(RED), TEXT], model="text-only")
    assert info.value.code == "vision_not_supported"
    with pytest.raises(anthropic.BadRequestError) as a_info:
        an.messages.create(model="text-only", max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": RED.split(",", 1)[1]}}]}])
    assert a_info.value.status_code == 400 and "does not support image input" in str(a_info.value.body)
    r = httpx.post(server.url + "/v1/responses", timeout=60, json={"model": "text-only", "input": [
        {"role": "user", "content": [{"type": "input_image", "image_url": RED}]}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "vision_not_supported", r.text


def test_anthropic_and_responses_bad_images_name_the_part(an: anthropic.Anthropic, server: ServerProcess) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        an.messages.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "bm90IGFuIGltYWdl"}}]}])
    assert info.value.status_code == 400 and "messages.0.content.1.source" in str(info.value.body)
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    r = httpx.post(server.url + "/v1/responses", timeout=60, json={"model": MODEL, "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                     {"type": "input_image", "image_url": "data:image/png;base64,bm90IGFuIGltYWdl"}]}]})
    error = r.json()["error"]
    assert r.status_code == 400 and error["param"] == "input[0].content[1]" and "not a readable image" in error["message"]


def test_bad_inputs_leave_the_worker_serving(oa: openai.OpenAI, server: ServerProcess) -> None:
    assert server.proc is not None
    before = worker_pids(server.proc.pid)
    openai_error(oa, [image("data:image/png;base64,AAAA"), TEXT])
    answer = ask(oa, [image(SMALL_BLUE), TEXT])
    assert answer.choices[0].finish_reason in ("stop", "length") and worker_pids(server.proc.pid) == before


def test_default_server_refuses_loopback_urls_before_connecting(folder: Path, image_host: str) -> None:
    Images.hits.clear()
    with ServerProcess(folder) as srv, openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0) as c:
        with pytest.raises(openai.BadRequestError) as info:
            c.chat.completions.create(model=MODEL, max_tokens=4, messages=chat(f"{image_host}/red.png"))
    assert "127.0.0.1, a loopback, link-local or private address" in str(info.value.body)
    assert "--allow-private-urls" in str(info.value.body)
    assert Images.hits == []  # refused on the resolved address: no connection was made


def test_models_and_monitor_say_which_models_take_images(oa: openai.OpenAI, server: ServerProcess) -> None:
    listed = {m.id: (m.model_extra or {}).get("capabilities") for m in oa.models.list().data}
    assert "vision" in listed[MODEL] and "chat" in listed[MODEL]
    assert "vision" not in listed["text-only"] and "chat" in listed["text-only"]
    ask(oa, [TEXT], model="text-only")
    rows = {r["model"]: r for r in httpx.get(server.url + "/backend/monitor", timeout=10).json()["models"]}
    assert rows[MODEL]["vision"] is True and rows["text-only"]["vision"] is False


def test_a_gallery_entry_with_mmproj_installs_both_files_and_serves_images(oa: openai.OpenAI, server: ServerProcess,
                                                                           folder: Path) -> None:
    r = httpx.post(server.url + "/models/apply", json={"id": "local@gemma-vision-gallery"}, timeout=30)
    assert r.status_code == 200, r.text
    uuid, deadline = r.json()["uuid"], time.monotonic() + 120
    while not (job := httpx.get(f"{server.url}/models/jobs/{uuid}", timeout=10).json())["processed"]:
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["error"] is None, job
    assert (folder / "gv" / "gemma.gguf").is_file() and (folder / "gv" / "mmproj-f32.gguf").is_file()
    answer = ask(oa, [image(RED), TEXT], model="gemma-vision-gallery")
    assert answer.usage.prompt_tokens == ask(oa, [TEXT], model="gemma-vision-gallery").usage.prompt_tokens + 66


def test_images_keep_constraints_tools_stop_strings_and_cancellation(oa: openai.OpenAI, server: ServerProcess) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}},
              "required": ["colour"], "additionalProperties": False}
    r = oa.chat.completions.create(model=MODEL, max_tokens=40, temperature=0, messages=chat(RED),
                                   response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema, "strict": True}})
    assert json.loads(r.choices[0].message.content or "")["colour"] in ("red", "green", "blue")
    tools: Any = [{"type": "function", "function": {"name": "name_colour", "parameters": schema}}]
    r = oa.chat.completions.create(model=MODEL, max_tokens=40, temperature=0, messages=chat(RED), tools=tools,
                                   tool_choice={"type": "function", "function": {"name": "name_colour"}})
    call = (r.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "name_colour" and json.loads(call.function.arguments)["colour"] in ("red", "green", "blue")
    # the stop string comes from this very request's own answer (another question's answer need not share it)
    full = oa.chat.completions.create(model=MODEL, max_tokens=8, temperature=0, messages=chat(RED)).choices[0].message.content or ""
    stop = full.strip()[:3] or full[:2]  # the tiny random tower may answer with line breaks only
    assert stop, full
    r = oa.chat.completions.create(model=MODEL, max_tokens=8, temperature=0, messages=chat(RED), stop=[stop])
    assert r.choices[0].finish_reason == "stop" and stop not in (r.choices[0].message.content or "")
    # A stream with an image, abandoned after its first chunk: the server logs the cancellation and serves on.
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=60, json={
            "model": MODEL, "max_tokens": 500, "stream": True, "messages": chat(SMALL_BLUE),
            "logit_bias": {"1": -100, "106": -100}}) as s:
        next(line for line in s.iter_lines() if line.startswith("data: {"))
    deadline = time.monotonic() + 30
    while "cancelled before its end" not in server.log():
        assert time.monotonic() < deadline, server.log()[-2000:]
        time.sleep(0.2)
    assert ask(oa, [image(RED), TEXT]).choices[0].message.content == full
