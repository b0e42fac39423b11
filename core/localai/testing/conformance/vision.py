"""The conformance suite's ``vision`` checks, mixed into :class:`~localai.testing.conformance.BackendConformance`.

A tiny model with a random vision tower cannot describe a picture, so these pin the plumbing a user relies on:
usage counts the image's tokens exactly, the same image gives the same greedy answer and another image another,
images of any size go through the model's resizing, streaming changes nothing, concurrent requests with different
images each get their solo answer, a cached prompt never lends one image's KV to another, and the OpenAI,
Anthropic and Open Responses APIs give one answer for one image. Clients are the official SDKs, strict.
"""

from __future__ import annotations

import base64
import io
from typing import Any, ClassVar

from localai.testing.conformance.contract import check, contract
from localai.testing.conformance.harness import in_threads

VISION, VISION_COLD = "conformance-vision", "conformance-vision-cold"
QUESTION = "Describe this image."


def image_url(kind: str, size: tuple[int, int], seed: int = 0) -> str:
    """A PNG data URL: a solid colour (``kind`` a colour name) or seeded ``noise``."""
    import numpy as np
    from PIL import Image

    if kind == "noise":
        pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        img = Image.fromarray(pixels)
    else:
        img = Image.new("RGB", size, kind)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


RED = image_url("red", (224, 224))
NOISE = image_url("noise", (300, 200), seed=1)  # not square, not the model's size: resized by the model
SMALL_BLUE = image_url("blue", (37, 23))
NOISE_2 = image_url("noise", (64, 480), seed=2)
NOISE_3 = image_url("noise", (224, 224), seed=7)


LONG_QUESTION = ("You are looking at a picture taken for a catalogue of colours and textures. Say what the main "
                 "colour is, whether it is a plain colour or a pattern, and what it reminds you of. The picture: ")


def chat(url: str | None, text: str = QUESTION, image_last: bool = False) -> list[dict[str, Any]]:
    image: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}}] if url else []
    words = [{"type": "text", "text": text}]
    return [{"role": "user", "content": [*words, *image] if image_last else [*image, *words]}]


class VisionChecks:
    """The ``vision`` capability's checks (through the server, on the ``vision_model`` YAML)."""

    vision_model: ClassVar[dict[str, Any] | None] = None
    """The YAML of the vision model (default: ``model``), e.g. with ``mmproj:``."""
    image_tokens: ClassVar[int | None] = None
    """Prompt tokens one image adds to a chat (its embeddings plus any begin/end tokens the model wraps it in):
    usage must count exactly this many more than the same chat without the image. ``None``: only "more"."""
    vision_missing: ClassVar[str | None] = None
    """Why the vision model's files are missing on this machine (set it in ``model_files``): the vision checks then
    fail in strict runs and skip otherwise, while every other check still runs."""
    max_tokens: ClassVar[int]
    timeout: ClassVar[float]
    capabilities: ClassVar[tuple[str, ...]]

    @classmethod
    def needs_vision(cls) -> None:
        import pytest

        from localai.testing.strict import missing

        if "vision" not in cls.capabilities:
            pytest.skip("backend does not declare 'vision'")
        if cls.vision_missing:
            missing(cls.vision_missing)

    @classmethod
    def ask(cls, client: Any, url: str | None, model: str = VISION, *, messages: list[dict[str, Any]] | None = None,
            **kw: Any) -> Any:
        return client.chat.completions.create(model=model, messages=messages or chat(url), max_tokens=cls.max_tokens,
                                              temperature=0, **kw)

    def test_http_vision(self, client: Any) -> None:
        self.needs_vision()
        with contract("vision"):
            r = self.ask(client, RED)
        check(r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens > 0, "vision",
              f"an image question ended {r.choices[0].finish_reason!r} after {r.usage.completion_tokens} tokens")

    def test_vision_usage_counts_the_image(self, client: Any) -> None:
        self.needs_vision()
        with contract("vision-usage"):
            with_image, without = self.ask(client, RED).usage, self.ask(client, None).usage
        added = with_image.prompt_tokens - without.prompt_tokens
        if self.image_tokens is not None:
            check(added == self.image_tokens, "vision-usage",
                  f"the image added {added} prompt tokens to usage; the model's image takes {self.image_tokens}")
        check(added > 0, "vision-usage", f"usage counts {with_image.prompt_tokens} prompt tokens with the image and "
                                         f"{without.prompt_tokens} without")

    def test_vision_answers_follow_the_image(self, client: Any) -> None:
        self.needs_vision()
        with contract("vision"):
            red = [self.ask(client, RED, logprobs=True) for _ in range(2)]
            noise = self.ask(client, NOISE, logprobs=True)
            others = [self.ask(client, url) for url in (SMALL_BLUE, NOISE_2)]  # other sizes and shapes: resized
        texts = [r.choices[0].message.content for r in red]
        check(texts[0] == texts[1], "vision", f"the same image gave two greedy answers: {texts!r}")

        def first_logprobs(r: Any) -> list[float]:
            content = r.choices[0].logprobs.content if r.choices[0].logprobs else None
            return [t.logprob for t in content or []]

        same = noise.choices[0].message.content == texts[0] and first_logprobs(noise) == first_logprobs(red[0])
        check(not same, "vision", f"a red and a noise image gave the same answer {texts[0]!r} (and logprobs): the "
                                  "image does not reach the model")
        finished = [(r.choices[0].finish_reason, r.usage.prompt_tokens) for r in others]
        check(all(reason in ("stop", "length") and n > red[0].usage.prompt_tokens // 2 for reason, n in finished), "vision",
              f"images of other sizes and shapes (37x23, 64x480) ended {finished} (finish reason, prompt tokens)")

    def test_vision_stream_equals_non_stream(self, client: Any) -> None:
        self.needs_vision()
        with contract("vision"):
            whole = self.ask(client, NOISE).choices[0].message.content
            chunks = self.ask(client, NOISE, stream=True)
            streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        check(streamed == whole, "vision", f"streamed {streamed!r}, not streamed {whole!r}")

    def test_vision_concurrent_requests_get_their_solo_answers(self, client: Any) -> None:
        self.needs_vision()
        urls = [RED, NOISE, SMALL_BLUE, NOISE_2]
        with contract("vision"):
            solo = [self.ask(client, url).choices[0].message.content for url in urls]
        together = in_threads(4, lambda i: self.ask(client, urls[i]).choices[0].message.content, self.timeout)
        check(together == solo, "vision", f"four concurrent image requests answered {together!r}; alone {solo!r}")

    def test_vision_cache_never_reuses_another_images_kv(self, client: Any) -> None:
        self.needs_vision()
        # The long text comes first and the image last, so a prompt cache finds the whole text in the slot that
        # served image A and must stop reusing exactly where the images differ.
        # Image B is the first candidate whose answer differs from A's (on the model that never saw A): with equal
        # answers the check could not tell a cache lending A's KV to B.
        def answer(model: str, url: str) -> str | None:
            return self.ask(client, None, model, messages=chat(url, LONG_QUESTION, image_last=True)).choices[0].message.content

        with contract("vision"):
            colds = {}
            for url in (NOISE_3, NOISE, NOISE_2, SMALL_BLUE):
                colds[url] = answer(VISION_COLD, url)
            other = answer(VISION, RED)
            b = next((url for url, text in colds.items() if text != other), None)
            check(b is not None, "vision", f"every test image gave the red image's answer {other!r} after this text: "
                                           "the check cannot tell whether the cache lent one image's KV to another")
            warm = answer(VISION, b)  # type: ignore[arg-type]
        cold = colds[b]  # type: ignore[index]
        check(warm == cold, "vision", f"image B after image A with the same text gave {warm!r}; B cold gave {cold!r}: "
                                      "the prompt cache reused A's KV (key the cache on image content)")

    def test_vision_three_apis_one_answer(self, client: Any, server: Any) -> None:
        import anthropic
        import openai

        self.needs_vision()
        data = RED.split(",", 1)[1]
        with contract("vision"):
            expected = self.ask(client, RED).choices[0].message.content
            with anthropic.Anthropic(base_url=server.url, api_key="conformance", max_retries=0, timeout=self.timeout,
                                     _strict_response_validation=True) as a:
                msg = a.messages.create(model=VISION, max_tokens=self.max_tokens, extra_body={"temperature": 0}, messages=[{
                    "role": "user", "content": [
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
                        {"type": "text", "text": QUESTION}]}])
            with openai.OpenAI(base_url=server.url + "/v1", api_key="conformance", max_retries=0, timeout=self.timeout,
                               _strict_response_validation=True) as o:
                resp = o.responses.create(model=VISION, max_output_tokens=self.max_tokens, temperature=0, store=False,
                                          input=[{"role": "user", "content": [
                                              {"type": "input_image", "image_url": RED, "detail": "auto"},
                                              {"type": "input_text", "text": QUESTION}]}])
        anthropic_text = "".join(b.text for b in msg.content if b.type == "text")
        check(anthropic_text == expected, "vision", f"Anthropic Messages answered {anthropic_text!r}; OpenAI chat {expected!r}")
        check(resp.output_text == expected, "vision", f"Open Responses answered {resp.output_text!r}; OpenAI chat {expected!r}")
