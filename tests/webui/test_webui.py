"""The web UI in a real browser (Debian's chromium through Playwright) against a real server on the default model.

Pins: the page and its files load without an API key while the API still answers 401; the key prompt appears
once and the key then rides on every call; chat streams token by token, Stop cancels the generation on the
server, answers carry token counts and tok/s, conversations survive a reload; model output is shown as text,
never run as HTML; API errors read as sentences; each page renders (and degrades to a plain note where a
route is not on this server). Screenshots of every page land in ``$LOCALAI_WEBUI_SCREENSHOTS`` or a temporary
folder whose path is printed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from localai.testing import GGUF_NAME, ServerProcess, missing, write_models

pytestmark = pytest.mark.engine

CHROMIUM = os.environ.get("LOCALAI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
MODEL = "gemma-3-270m"
MODELS = {"gemma-3-270m.yaml": f"""
name: {MODEL}
backend: llama-cpp
description: Gemma 3 270M base (Q4_K_M GGUF)
context_size: 2048
parameters:
  model: {GGUF_NAME}
  temperature: 0
known_usecases: [chat, completion, tokenize]
"""}
GENERATION_TIMEOUT_MS = 240_000  # the shared 2-core machine can be slow; every wait still ends on page state


def _need_browser() -> None:
    problem = None
    try:
        import playwright  # noqa: F401
    except ImportError:
        problem = "the playwright package is not installed (pip install -e '.[test]')"
    if problem is None and not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        problem = f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium (apt-get install chromium)"
    if problem:
        missing(problem)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("LOCALAI_WEBUI_SCREENSHOTS") or tmp_path_factory.mktemp("webui-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nweb UI screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_models(tmp_path_factory.mktemp("webui-models"), MODELS)


@pytest.fixture(scope="module")
def server(models_dir: Path) -> Iterator[ServerProcess]:
    with ServerProcess(models_dir, data_path=models_dir.parent / "webui-data") as srv:
        yield srv


@pytest.fixture(scope="module")
def keyed_server(models_dir: Path) -> Iterator[ServerProcess]:
    with ServerProcess(models_dir, data_path=models_dir.parent / "webui-data-key", args=["--api-key", "sesame"]) as srv:
        yield srv


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (empty storage) whose page fails the test on any uncaught script error."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 820})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    ctx.close()
    assert not errors, f"script errors on the page: {errors}"


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition (server log, file) until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def open_chat(page: Any, url: str) -> None:
    page.goto(url + "/")
    page.wait_for_function("() => document.querySelector('#chat-model').options.length > 0")


def chat_settings(page: Any, max_tokens: int, temperature: float | None = 0, system: str | None = None) -> None:
    if page.get_attribute("#toggle-settings", "aria-expanded") != "true":
        page.click("#toggle-settings")
    page.fill("#max-tokens", str(max_tokens))
    page.fill("#temperature", "" if temperature is None else str(temperature))
    if system is not None:
        page.fill("#system-prompt", system)


def send(page: Any, text: str) -> None:
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")  # the keyboard path: Enter sends


def wait_answer_done(page: Any, count: int) -> Any:
    """The ``count``-th assistant message once its stream has ended."""
    page.wait_for_function(
        "n => { const m = document.querySelectorAll('.msg.assistant'); return m.length >= n && !m[n-1].classList.contains('streaming'); }",
        arg=count, timeout=GENERATION_TIMEOUT_MS)
    return page.locator(".msg.assistant").nth(count - 1)


# -- serving -------------------------------------------------------------------------------------------


def test_page_and_files_load_without_a_key_while_the_api_still_needs_one(keyed_server: ServerProcess) -> None:
    url = keyed_server.url
    index = httpx.get(url + "/", timeout=10)
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in index.headers["content-security-policy"]
    for path, kind in (("/webui/app.js", "text/javascript"), ("/webui/markdown.js", "text/javascript"),
                       ("/webui/style.css", "text/css"), ("/webui/favicon.svg", "image/svg+xml")):
        r = httpx.get(url + path, timeout=10)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
    # Only the UI's own files are open: its JSON views, the API and unknown files still need the key.
    for path in ("/webui/api/models", "/webui/api/backends", "/v1/models", "/webui/secret.js", "/webui/"):
        r = httpx.get(url + path, timeout=10)
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.get(url + "/webui/api/models", headers={"Authorization": "Bearer sesame"}, timeout=10)
    assert r.status_code == 200
    entry = next(m for m in r.json()["data"] if m["id"] == MODEL)
    assert entry["backend"] == "llama-cpp" and "chat" in entry["usecases"] and entry["usable"] and entry["problems"] == []


def test_unknown_ui_file_is_a_404_never_a_file_read(server: ServerProcess) -> None:
    for path in ("/webui/nope.js", "/webui/..%2f__init__.py", "/webui/%2e%2e%2fapp.py"):
        r = httpx.get(server.url + path, timeout=10)
        assert r.status_code == 404, path
        assert "def " not in r.text


# -- chat ----------------------------------------------------------------------------------------------


def test_chat_streams_stops_and_survives_a_reload(page: Any, server: ServerProcess, shots: Path) -> None:
    open_chat(page, server.url)
    page.select_option("#chat-model", MODEL)
    chat_settings(page, max_tokens=1500, system="You are a storyteller.")
    send(page, "Write a very long story about a lighthouse keeper and the sea, in many paragraphs.")

    # Text shows up while the answer is still streaming (the message carries .streaming until the end).
    page.wait_for_function(
        "() => { const m = document.querySelector('.msg.assistant.streaming .body'); return m && m.textContent.trim().length > 0; }",
        timeout=GENERATION_TIMEOUT_MS)
    assert page.is_visible("#stop") and not page.is_visible("#send")
    first_text = page.inner_text(".msg.assistant .body")
    page.wait_for_function("t => document.querySelector('.msg.assistant .body').innerText.length > t.length",
                           arg=first_text, timeout=GENERATION_TIMEOUT_MS)  # it grows: token by token, not at the end
    page.screenshot(path=str(shots / "chat-streaming.png"))

    page.click("#stop")
    answer = wait_answer_done(page, 1)
    assert "Stopped." in answer.inner_text()
    assert page.is_visible("#send") and not page.is_visible("#stop")
    wait_until(lambda: "cancelled before its end (client closed the stream)" in server.log(), 30,
               "the server to log the cancelled generation")
    stopped_text = answer.locator(".body").inner_text()
    assert stopped_text.strip()

    # A short second turn runs to its end and reports token counts and speed from the usage chunk.
    chat_settings(page, max_tokens=6)
    send(page, "And then?")
    done = wait_answer_done(page, 2)
    stats = done.locator(".stats").inner_text()
    assert re.search(r"\b\d+ tokens · [\d.]+ tok/s · prompt \d+ tokens · first token [\d.]+ s · finish: (length|stop)", stats), stats
    page.screenshot(path=str(shots / "chat.png"))

    # Reload: the conversation is listed, selected and whole; the model choice is remembered.
    page.reload()
    page.wait_for_function("() => document.querySelector('#chat-model').options.length > 0")
    assert page.input_value("#chat-model") == MODEL
    item = page.locator("#conversations .open", has_text="Write a very long story")
    assert item.count() == 1
    assert page.locator(".msg.user").nth(0).inner_text().count("lighthouse keeper") == 1
    assert page.locator(".msg.assistant").count() == 2
    assert page.locator(".msg.assistant .body").nth(0).inner_text() == stopped_text
    assert page.input_value("#system-prompt") == "You are a storyteller."

    # New chat, then switch back through the sidebar; delete removes it from the list and from storage.
    page.click("#new-chat")
    assert page.locator(".msg").count() == 0
    item.click()
    assert page.locator(".msg.assistant").count() == 2
    page.once("dialog", lambda d: d.accept())
    page.click("#conversations .delete")
    assert page.locator("#conversations .open").count() == 0
    assert json.loads(page.evaluate("localStorage.getItem('localai.conversations')")) == []


@pytest.fixture(scope="module")
def vision_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default model, plus the tiny Gemma 3 vision test model (the same GGUF with an mmproj)."""
    from localai.testing import engine_python_or_skip
    from localai.testing.models import gemma_vision

    mmproj = gemma_vision(engine_python_or_skip("transformers"))[1]
    folder = write_models(tmp_path_factory.mktemp("webui-vision"), {**MODELS, "vision.yaml": f"""
name: gemma-vision
backend: llama-cpp
context_size: 2048
mmproj: mmproj.gguf
parameters:
  model: {GGUF_NAME}
  temperature: 0
"""})
    (folder / "mmproj.gguf").symlink_to(mmproj)
    with ServerProcess(folder, data_path=folder.parent / "webui-vision-data") as srv:
        yield srv


def test_chat_sends_attached_and_pasted_images(page: Any, vision_server: ServerProcess, tmp_path: Path,
                                               shots: Path) -> None:
    from localai.testing.conformance.vision import RED, SMALL_BLUE

    png = tmp_path / "red.png"
    png.write_bytes(base64.b64decode(RED.split(",", 1)[1]))
    open_chat(page, vision_server.url)
    page.select_option("#chat-model", MODEL)
    assert page.is_disabled("#attach")  # the text-only model takes no images: the button says so
    assert "does not take images" in (page.get_attribute("#attach", "title") or "")
    page.select_option("#chat-model", "gemma-vision")
    assert page.is_enabled("#attach")
    chat_settings(page, max_tokens=4)

    page.set_input_files("#attach-input", str(png))  # what "Attach an image" opens
    page.wait_for_selector("#attachments img")
    page.evaluate("""b64 => {  // a screenshot pasted into the message box
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], 'pasted.png', { type: 'image/png' }));
        document.querySelector('#prompt').dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true }));
    }""", SMALL_BLUE.split(",", 1)[1])
    page.wait_for_function("() => document.querySelectorAll('#attachments img').length === 2")
    page.click("#attachments button[aria-label='Remove image 2']")
    assert page.locator("#attachments img").count() == 1
    page.screenshot(path=str(shots / "chat-image-attached.png"))

    send(page, "Describe this image.")
    done = wait_answer_done(page, 1)
    assert page.locator(".msg.user img[alt='Attached image 1']").count() == 1
    assert page.locator("#attachments img").count() == 0  # sent with the message, not kept for the next one
    stats = done.locator(".stats").inner_text()
    prompt = int(re.search(r"prompt (\d+) tokens", stats).group(1))  # type: ignore[union-attr]
    text_only = httpx.post(vision_server.url + "/v1/chat/completions", timeout=120, json={
        "model": "gemma-vision", "max_tokens": 1, "messages": [{"role": "user", "content": "Describe this image."}]}).json()
    assert prompt == text_only["usage"]["prompt_tokens"] + 66  # the image's 64 embeddings and its two markers
    page.screenshot(path=str(shots / "chat-image.png"))

    page.reload()  # the image is part of the stored conversation
    page.wait_for_selector(".msg.user img[alt='Attached image 1']")


def test_api_errors_read_as_sentences(page: Any, server: ServerProcess) -> None:
    body = {"error": {"message": "queue full: 4 requests are waiting for gemma-3-270m", "type": "rate_limit_error",
                      "param": None, "code": "queue_full"}}
    for path in ("**/v1/chat/completions", "**/v1/completions"):  # chat, or continue mode on the base default model
        page.route(path, lambda route: route.fulfill(
            status=429, headers={"Retry-After": "3", "content-type": "application/json"}, body=json.dumps(body)))
    open_chat(page, server.url)
    send(page, "hello")
    error = wait_answer_done(page, 1).locator(".error-text")
    assert error.inner_text() == ("The server is busy (429): queue full: 4 requests are waiting for gemma-3-270m. "
                                  "Try again in 3 s.")
    assert error.get_attribute("role") == "alert"


def test_model_output_is_text_never_html(page: Any, server: ServerProcess) -> None:
    """Stored answers with HTML, scripts and javascript: links render as text; the Markdown subset renders."""
    nasty = ("<img src=x onerror=\"window.pwned=1\"> **bold** and *it* and `co<b>de`\n\n"
             "- one\n- [two](https://example.com/a?b=1)\n- [bad](javascript:window.pwned=2)\n\n"
             "```html\n<script>window.pwned=3</script>\n```\n\n<script>window.pwned=4</script>")
    conv = {"id": "c1", "title": "html test", "created": 1, "updated": 1, "system": "", "messages": [
        {"role": "user", "content": "<b>not bold</b>"},
        {"role": "assistant", "content": nasty, "reasoning": "thinking <i>hard</i>",
         "toolCalls": [{"id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}],
         "stats": {"completion_tokens": 9, "prompt_tokens": 3, "tokens_per_second": 12.5, "first_token_s": 0.2}}]}
    page.goto(server.url + "/")
    page.evaluate("c => { localStorage.setItem('localai.conversations', JSON.stringify([c]));"
                  " localStorage.setItem('localai.currentConversation', JSON.stringify(c.id)); }", conv)
    page.reload()
    msg = page.locator(".msg.assistant")
    msg.wait_for()
    assert page.evaluate("window.pwned") is None
    assert page.locator(".msg img, .msg script, .msg b, .msg i").count() == 0
    assert page.locator(".msg.user .body").inner_text() == "<b>not bold</b>"
    body = msg.locator(".body")
    assert body.locator("strong").inner_text() == "bold" and body.locator("em").inner_text() == "it"
    assert body.locator("p code").inner_text() == "co<b>de"
    assert body.locator("li").count() == 3
    links = body.locator("a")
    assert links.count() == 1 and links.get_attribute("href") == "https://example.com/a?b=1"
    assert links.get_attribute("rel") == "noopener noreferrer nofollow"
    assert "[bad](javascript:window.pwned=2)" in body.inner_text()
    assert body.locator(".codeblock code").inner_text() == "<script>window.pwned=3</script>"
    assert body.locator(".codeblock .copy").count() == 1
    assert "<script>window.pwned=4</script>" in body.inner_text()
    # Reasoning is collapsed; tool calls are shown as calls with their arguments.
    reasoning = msg.locator("details.reasoning")
    assert reasoning.get_attribute("open") is None and "thinking <i>hard</i>" not in reasoning.inner_text()
    reasoning.locator("summary").click()
    assert "thinking <i>hard</i>" in reasoning.inner_text()
    call = msg.locator(".tool-call")
    assert "get_weather" in call.inner_text() and '"city": "Paris"' in call.inner_text()
    assert "9 tokens · 12.5 tok/s · prompt 3 tokens" in msg.locator(".stats").inner_text()


# -- API key ---------------------------------------------------------------------------------------------


def test_api_key_prompt_then_every_call_carries_it(page: Any, keyed_server: ServerProcess, shots: Path) -> None:
    page.goto(keyed_server.url + "/")
    dialog = page.locator("#key-dialog")
    dialog.wait_for(state="visible")
    page.screenshot(path=str(shots / "api-key.png"))
    page.fill("#key-input", "wrong")
    page.press("#key-input", "Enter")
    # A wrong key: asked again, saying so.
    page.wait_for_function("() => document.querySelector('#key-dialog').open && "
                           "document.querySelector('#key-message').textContent.includes('rejected')")
    page.fill("#key-input", "sesame")
    page.click("#key-save")
    page.wait_for_function("() => document.querySelector('#chat-model').options.length > 0")
    assert page.input_value("#chat-model") == MODEL
    assert page.evaluate("sessionStorage.getItem('localai.apiKey')") == "sesame"
    assert page.evaluate("localStorage.getItem('localai.apiKey')") is None  # not remembered unless asked

    chat_settings(page, max_tokens=3)
    send(page, "Hi")
    answer = wait_answer_done(page, 1)
    assert answer.locator(".error-text").count() == 0
    assert re.search(r"\b\d+ tokens · ", answer.locator(".stats").inner_text())

    page.goto(keyed_server.url + "/#/models")
    page.locator(f'#models-table tr[data-model="{MODEL}"]').wait_for()
    assert not dialog.is_visible()  # asked once for the tab's session


# -- other pages ------------------------------------------------------------------------------------------


def test_the_chat_page_says_the_default_model_is_a_base_model(page: Any, server: ServerProcess, shots: Path) -> None:
    """A newcomer's first screen: the notice next to the model picker says what a base model does and how to get a
    chat model, with the signal one click away."""
    open_chat(page, server.url)
    notice = page.locator("#base-model-notice")
    notice.wait_for(state="visible")
    text = notice.inner_text()
    assert f"{MODEL} is a base model" in text and "localai run gemma-3-270m-it-qat" in text
    assert page.get_attribute("#base-model-notice", "role") == "note"
    page.click("#base-model-notice summary")
    assert "no chat template" in page.inner_text("#base-model-reason")
    page.screenshot(path=str(shots / "chat-base-model.png"), full_page=True)

    # Continue mode (on for a base model): the message is the start of a text, sent to /v1/completions.
    chat_settings(page, max_tokens=6)
    assert page.is_checked("#continue-text")
    with page.expect_request("**/v1/completions") as sent:
        send(page, "The capital of France is")
    assert sent.value.post_data_json["prompt"] == "The capital of France is"
    assert wait_answer_done(page, 1).locator(".body").inner_text().strip()
    page.uncheck("#continue-text")  # remembered per model; the next message is a chat message again
    with page.expect_request("**/v1/chat/completions") as sent:
        send(page, "Hello")
    assert sent.value.post_data_json["messages"][-1]["content"] == "Hello"
    wait_answer_done(page, 2)
    page.check("#continue-text")


def test_models_page_lists_the_default_model(page: Any, server: ServerProcess, shots: Path) -> None:
    page.goto(server.url + "/#/models")
    row = page.locator(f'#models-table tr[data-model="{MODEL}"]')
    row.wait_for()
    assert page.title() == "Models · localai"
    text = row.inner_text()
    assert "llama-cpp" in text and "chat" in text and "Gemma 3 270M base" in text
    # The gallery and live state come from other routes; absent ones read as a note, present ones render.
    page.wait_for_function("() => !document.querySelector('#gallery-note').hidden || "
                           "document.querySelectorAll('#gallery-list li').length > 0")
    gallery = httpx.get(server.url + "/models/available", timeout=10)
    if gallery.status_code == 404:
        assert "not available on this server" in page.inner_text("#gallery-note")
    elif gallery.status_code == 502:  # offline: a person's sentence, the technical cause one click away
        note = page.inner_text("#gallery-note")
        assert note.startswith("The model gallery cannot be reached from this machine") and "Server error" not in note
        page.click("#gallery-note summary")
        assert "cannot reach" in page.inner_text("#gallery-note details")
    page.screenshot(path=str(shots / "models.png"), full_page=True)

    if httpx.get(server.url + "/backend/monitor", timeout=10).status_code == 404:
        assert "not available on this server (GET /backend/monitor answered 404)" in page.inner_text("#models-note")
        assert row.get_by_role("button", name=f"Load {MODEL}", exact=True).count() == 0
    else:  # the lifecycle routes are here: unload and load again from the page
        # exact names: Playwright matches a substring by default, and "Load x" is inside "Unload x"
        for verb, then in (("Unload", "Load"), ("Load", "Unload")):
            button = row.get_by_role("button", name=f"{verb} {MODEL}", exact=True)
            if button.count() == 0:
                continue
            button.click()
            row.get_by_role("button", name=f"{then} {MODEL}", exact=True).wait_for(timeout=GENERATION_TIMEOUT_MS)
        # the page's view agrees with the server's after the round trip: loaded again
        assert any(r["model"] == MODEL for r in httpx.get(server.url + "/backend/monitor", timeout=10).json()["models"])

    # "Chat" from the models table selects that model on the chat page.
    row.get_by_role("button", name=f"Chat with {MODEL}").click()
    page.wait_for_function("() => !document.querySelector('#page-chat').hidden && "
                           "document.querySelector('#chat-model').options.length > 0")
    assert page.input_value("#chat-model") == MODEL


def test_unload_button_is_busy_until_its_call_ends(page: Any, server: ServerProcess) -> None:
    """A second click while the unload is under way sends nothing (it used to send a second unload, answered
    404, and the page then showed that error over a table it did not redraw)."""
    assert httpx.post(server.url + "/backend/load", json={"model": MODEL}, timeout=GENERATION_TIMEOUT_MS / 1000).status_code == 200
    held: list[Any] = []
    page.route("**/backend/shutdown", lambda route: held.append(route))  # waits until the test lets it through
    page.goto(server.url + "/#/models")
    row = page.locator(f'#models-table tr[data-model="{MODEL}"]')
    unload = row.get_by_role("button", name=f"Unload {MODEL}", exact=True)
    unload.click()
    for _ in range(600):  # the route handler runs while playwright waits
        if held:
            break
        page.wait_for_timeout(50)
    assert unload.is_disabled() and unload.inner_text() == "Unloading…"
    unload.dispatch_event("click")  # a click on a disabled button does nothing
    page.wait_for_timeout(300)
    assert len(held) == 1
    held[0].continue_()
    row.get_by_role("button", name=f"Load {MODEL}", exact=True).wait_for(timeout=GENERATION_TIMEOUT_MS)
    assert len(held) == 1 and page.locator("#models-note").is_hidden()
    assert not any(r["model"] == MODEL for r in httpx.get(server.url + "/backend/monitor", timeout=10).json()["models"])


def test_gallery_install_shows_live_progress(page: Any, server: ServerProcess) -> None:
    """The page's side of LocalAI's gallery protocol (apply -> job uuid -> poll until processed), on canned answers
    so it runs with or without the gallery routes on this branch; the gallery's own tests cover the server side."""
    entries = [{"id": "test@tiny-llm", "name": "tiny-llm", "description": "A tiny model", "tags": ["llm", "gguf"],
                "installed": False, "backend": "llama-cpp", "license": "mit", "gallery": {"name": "test", "url": "x"}},
               {"id": "test@other", "name": "other", "description": "Another", "tags": [], "installed": False}]
    applied: list[dict[str, Any]] = []
    polls = {"n": 0}

    def available(route: Any) -> None:
        route.fulfill(json=entries)

    def apply(route: Any) -> None:
        applied.append(route.request.post_data_json)
        route.fulfill(json={"uuid": "job-1", "status": "http://x/models/jobs/job-1"})

    def job(route: Any) -> None:
        polls["n"] += 1
        done = polls["n"] >= 3
        route.fulfill(json={"uuid": "job-1", "processed": done, "progress": 100 if done else 40, "error": None,
                            "message": "completed" if done else "downloading tiny.gguf", "file_name": "tiny.gguf",
                            "file_size": "100.0 MB" if not done else "", "downloaded_size": "40.0 MB"})

    page.route("**/models/available*", available)
    page.route("**/models/apply", apply)
    page.route("**/models/jobs/job-1", job)
    page.goto(server.url + "/#/models")
    card = page.locator("#gallery-list li", has_text="tiny-llm")
    card.wait_for()
    assert "backend llama-cpp · licence mit" in card.inner_text()
    page.fill("#gallery-search", "tiny")
    assert page.locator("#gallery-list li.card").count() == 1
    card.get_by_role("button", name="Install model tiny-llm").click()
    page.wait_for_function("() => /downloading tiny.gguf · 40% · 40.0 MB of 100.0 MB/.test(document.querySelector('#gallery-list').textContent)")
    assert applied == [{"id": "test@tiny-llm"}]
    # Typing in the search box re-renders the list: the running job stays in view and its button stays disabled.
    page.fill("#gallery-search", "tiny-")
    assert "downloading tiny.gguf" in card.inner_text()
    assert card.get_by_role("button", name="Install model tiny-llm").is_disabled()
    page.wait_for_function("() => /Done/.test(document.querySelector('#gallery-list').textContent)")
    assert polls["n"] >= 3


def test_backends_page_shows_installed_backends_and_options(page: Any, server: ServerProcess, shots: Path) -> None:
    page.goto(server.url + "/#/backends")
    card = page.locator('#plugins-list li[data-backend="llama-cpp"]')
    card.wait_for()
    assert "available" in card.inner_text()
    card.locator("summary").click()
    assert card.locator("table tbody tr").count() > 3
    page.wait_for_function("() => !document.querySelector('#bgallery-note').hidden || "
                           "document.querySelectorAll('#bgallery-list li').length > 0")
    if httpx.get(server.url + "/backends/available", timeout=10).status_code == 404:
        assert "not available on this server" in page.inner_text("#bgallery-note")
    page.screenshot(path=str(shots / "backends.png"), full_page=True)


FAKE_IMAGE_BACKEND = Path(__file__).parents[1] / "fake_image_backend.py"


@pytest.fixture(scope="module")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with one image model on the images issue's test backend (core logic only: the page's requests)."""
    folder = tmp_path_factory.mktemp("webui-image-models")
    (folder / "paint.yaml").write_text("name: paint\nbackend: fake-image\nstep: 3\n")
    log = folder.parent / "fake-image.log"
    env = {"LOCALAI_PLUGINS": "fake_image_backend", "FAKE_BACKEND_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(FAKE_IMAGE_BACKEND.parent), os.environ.get("PYTHONPATH", "")])}
    with ServerProcess(folder, env=env) as srv:
        srv.fake_log = log  # type: ignore[attr-defined]
        yield srv


def generate_images(page: Any, url: str, model: str, fields: dict[str, str], n: int, timeout: float | None = None) -> None:
    """On the images page with ``model`` chosen, fill in ``fields`` (selector: value), ask for ``n`` 256x256 images
    and wait until all of them show: the steps both image tests share, whichever backend draws."""
    page.goto(url + "/#/images")
    page.wait_for_function(f"() => document.querySelector('#image-model').value === '{model}'")
    for selector, value in fields.items():
        page.fill(selector, value)
    page.fill("#image-n", str(n))
    page.select_option("#image-size", "256x256")
    page.click("#image-generate")
    page.wait_for_function(f"() => document.querySelectorAll('#image-results img').length === {n} && "
                           "[...document.querySelectorAll('#image-results img')].every(i => i.complete && i.naturalWidth === 256)",
                           timeout=timeout)
    assert re.fullmatch(rf"{n} image\(s\) in [\d.]+ s", page.inner_text("#image-status"))


def test_images_page_generates_images(page: Any, image_server: ServerProcess, shots: Path) -> None:
    fields = {"#image-prompt": "a red square", "#image-negative": "blue", "#image-steps": "2", "#image-seed": "7"}
    generate_images(page, image_server.url, "paint", fields, n=2)
    links = page.locator("#image-results a[download]")
    assert links.count() == 2 and links.nth(0).get_attribute("download").endswith("-1.png")
    assert links.nth(0).get_attribute("href").startswith("blob:")
    # Every field reached the backend: the negative prompt LocalAI's way (after "|"), steps, seed, size, n.
    log = image_server.fake_log.read_text()  # type: ignore[attr-defined]
    assert "generated paint n=2 256x256 steps=2 prompt='a red square' negative='blue' seed=7" in log, log
    page.screenshot(path=str(shots / "images.png"), full_page=True)


@pytest.fixture(scope="module")
def diffusers_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real diffusers backend (its own environment) on the tiny pipeline its tests build from configs."""
    import subprocess

    from localai.testing import engine_python_or_skip

    python = engine_python_or_skip("diffusers")
    folder = tmp_path_factory.mktemp("webui-diffusers")
    subprocess.run([python, "-m", "localai_diffusers.tiny", str(folder / "tiny-sd")], check=True, capture_output=True,
                   timeout=600)
    (folder / "tiny.yaml").write_text("name: tiny-sd\nbackend: diffusers\nstep: 2\nparameters:\n  model: tiny-sd\n"
                                      "diffusers:\n  pipeline_type: StableDiffusionPipeline\n")
    with ServerProcess(folder, env={"HF_HUB_OFFLINE": "1"}) as srv:
        yield srv


def test_images_page_on_the_real_diffusers_pipeline(page: Any, diffusers_server: ServerProcess, shots: Path) -> None:
    generate_images(page, diffusers_server.url, "tiny-sd", {"#image-prompt": "a lighthouse at dusk", "#image-steps": "2", "#image-seed": "3"},
                    n=1, timeout=120_000)
    page.screenshot(path=str(shots / "images-diffusers.png"), full_page=True)


def test_keyboard_alone_reaches_the_pages_and_the_composer(page: Any, server: ServerProcess) -> None:
    page.goto(server.url + "/#/models")  # the chat page puts the focus in the message box; this one leaves it
    page.locator(f'#models-table tr[data-model="{MODEL}"]').wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    order = []
    for _ in range(4):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert order[1:] == ["Chat", "Models", "Images"], order
    page.keyboard.press("Enter")  # on "Images"
    page.wait_for_function("() => !document.querySelector('#page-images').hidden")
    assert page.title() == "Images · localai"
    assert page.get_attribute('nav a[data-page="images"]', "aria-current") == "page"
    # The chat page starts in the message box; every form control there has an accessible name.
    page.goto(server.url + "/#/chat")
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'prompt'")
    unnamed = page.evaluate("""() => [...document.querySelectorAll('#page-chat button, #page-chat select, #page-chat textarea, #page-chat input')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).map(e => e.id)""")
    assert unnamed == []


def test_phone_width_has_no_sideways_scroll_and_a_sidebar_toggle(browser: Any, server: ServerProcess, shots: Path) -> None:
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, reduced_motion="reduce")
    page = ctx.new_page()
    try:
        open_chat(page, server.url)
        for name in ("chat", "models", "images", "backends"):
            page.goto(f"{server.url}/#/{name}")
            page.wait_for_function(f"() => !document.querySelector('#page-{name}').hidden")
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name
        page.goto(server.url + "/#/chat")
        assert page.evaluate("document.querySelector('#chat-sidebar').getBoundingClientRect().right <= 0")  # off-screen
        page.click("#toggle-sidebar")
        page.wait_for_function("() => document.querySelector('#chat-sidebar').getBoundingClientRect().left >= 0")
        assert page.get_attribute("#toggle-sidebar", "aria-expanded") == "true"
        page.keyboard.press("Escape")
        page.wait_for_function("() => !document.querySelector('#chat-sidebar').classList.contains('open')")
        page.screenshot(path=str(shots / "chat-phone.png"))
    finally:
        ctx.close()

