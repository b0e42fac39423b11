"""The core pairs images with the placeholders a chat template rendered, and refuses a template that loses one.

A backend feeds ``request.images`` in the order their placeholders stand in the rendered prompt, so a template
that drops or repeats an image's content must be a 400 naming the cause, never a shifted pairing or a worker error.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import anthropic
import openai
import pytest
from localai.testing import ServerProcess
from PIL import Image
from serving import FAKE_ENV, models

SEES = "name: {name}\nbackend: fake\nfake_image_placeholder: '<img>'\n"
MODELS = {
    "sees.yaml": SEES.format(name="sees"),
    # renders each message's role only: the image placeholder is lost
    "drops.yaml": SEES.format(name="drops") + "template:\n  chat: \"{% for m in messages %}{{ m.role }}: hi\\n{% endfor %}\"\n",
    # renders each message's content twice: every placeholder stands twice
    "repeats.yaml": SEES.format(name="repeats") + "template:\n  chat: \"{% for m in messages %}{{ m.content }} {{ m.content }}\\n{% endfor %}\"\n",
}


def png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(models(tmp_path_factory.mktemp("m"), MODELS), env=FAKE_ENV) as s:
        yield s


def ask(srv: ServerProcess, model: str) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", _strict_response_validation=True)
    return client.chat.completions.create(model=model, max_tokens=32, messages=[{"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64," + png()}}]}])


def test_a_template_that_keeps_the_image_serves_it(srv: ServerProcess) -> None:
    r = ask(srv, "sees")
    assert r.choices[0].message.content.count("<img>") == 1  # the echo backend returns the rendered prompt's words


@pytest.mark.parametrize("model,found", [("drops", 0), ("repeats", 2)])
def test_a_template_that_drops_or_repeats_an_image_is_a_400(srv: ServerProcess, model: str, found: int) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(srv, model)
    message = info.value.body["message"]
    assert f"rendered {found} image placeholders for 1 images" in message and model in message
    assert info.value.body["param"] == "messages"


def test_the_anthropic_api_gets_the_same_refusal_in_its_own_shape(srv: ServerProcess) -> None:
    client = anthropic.Anthropic(base_url=srv.url, api_key="x", _strict_response_validation=True)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="drops", max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png()}},
            {"type": "text", "text": "look"}]}])
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "invalid_request_error"
    assert "dropped or repeated an image" in info.value.body["error"]["message"]
