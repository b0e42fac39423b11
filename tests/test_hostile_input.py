"""Hostile and oversized input gets a clear 4xx in the API's own shape, and every route but the probes needs the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from localai.testing import ServerProcess
from serving import FAKE_ENV, models
from starlette.routing import Mount, Route

KEY = "sekret"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"content-type": "application/json", **AUTH}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = models(tmp_path_factory.mktemp("m"), {"echo.yaml": "name: echo\nbackend: fake\n"})
    with ServerProcess(folder, env={**FAKE_ENV, "LOCALAI_API_KEY": KEY}, args=["--upload-limit", "1"]) as s:
        yield s


def post(srv: ServerProcess, path: str, content: bytes | object) -> httpx.Response:
    return httpx.post(srv.url + path, content=content, headers=JSON, timeout=30)  # type: ignore[arg-type]


@pytest.mark.parametrize("path,shape", [("/v1/completions", "openai"), ("/v1/messages", "anthropic"), ("/v1/responses", "responses")])
def test_body_over_the_limit_is_413_in_the_apis_shape(srv: ServerProcess, path: str, shape: str) -> None:
    big = b'{"model":"echo","prompt":"' + b"x" * (2 * 2**20) + b'"}'
    for content in (big, iter([big[: 2**20], big[2**20:]])):  # with Content-Length, and chunked without it
        r = post(srv, path, content)
        assert r.status_code == 413, r.text
        body = r.json()
        if shape == "anthropic":
            assert body["type"] == "error" and body["error"]["type"] == "request_too_large"
        else:
            assert "--upload-limit" in body["error"]["message"]
    assert httpx.get(srv.url + "/v1/models", headers=AUTH).status_code == 200  # the server is fine


@pytest.mark.parametrize("name,path,content", [
    ("deep array", "/v1/completions", b'{"model":"echo","prompt":' + b"[" * 50000 + b"]" * 50000 + b"}"),
    ("deep object", "/v1/chat/completions",
     b'{"model":"echo","messages":[{"role":"user","content":"x"}],"user":' + b'{"a":' * 50000 + b"1" + b"}" * 50000 + b"}"),
    ("deep anthropic", "/v1/messages", b'{"model":"echo","max_tokens":5,"metadata":' + b'{"a":' * 50000 + b"1" + b"}" * 50000 + b"}"),
    ("invalid utf-8", "/v1/completions", b'{"model":"echo","prompt":"\xff\xfe\xfa"}'),
    ("huge n", "/v1/completions", b'{"model":"echo","prompt":"x","n":1000000}'),
    ("huge max_tokens", "/v1/completions", b'{"model":"echo","prompt":"x","max_tokens":100000000000000000000}'),
    ("huge max_tokens chat", "/v1/chat/completions",
     b'{"model":"echo","messages":[{"role":"user","content":"x"}],"max_tokens":100000000000000000000}'),
    ("huge max_tokens anthropic", "/v1/messages",
     b'{"model":"echo","messages":[{"role":"user","content":"x"}],"max_tokens":100000000000000000000}'),
    ("huge max_output_tokens", "/v1/responses", b'{"model":"echo","input":"x","max_output_tokens":100000000000000000000}'),
    ("not json", "/v1/responses", b"\x00\x01garbage"),
])
def test_hostile_bodies_are_400(srv: ServerProcess, name: str, path: str, content: bytes) -> None:
    r = post(srv, path, content)
    assert r.status_code == 400, (name, r.status_code, r.text[:300])
    body = r.json()
    if path == "/v1/messages":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    else:
        assert body["error"]["message"]
    assert httpx.get(srv.url + "/healthz").status_code == 200


def app_routes() -> list[tuple[str, str]]:
    """(method, path) for every route the app serves, path parameters filled in."""
    import os

    os.environ.setdefault("LOCALAI_PLUGINS", "fake_backend")
    from localai.server.app import Settings, create_app

    app = create_app(Settings(models_path=Path("/nonexistent"), api_keys=["k"]))

    def walk(routes: list) -> Iterator[tuple[str, set[str]]]:
        for r in routes:
            if hasattr(r, "effective_candidates"):  # FastAPI >= 0.13x keeps included routers as a tree
                yield from walk(r.effective_candidates())
            elif hasattr(r, "original_route"):
                yield r.path, set(getattr(r.original_route, "methods", None) or {"GET"})
            elif isinstance(r, Route):
                yield r.path, set(r.methods or {"GET"})
            elif isinstance(r, Mount):  # static files, sub-apps: one request inside each
                yield r.path.rstrip("/") + "/x", {"GET"}
            else:
                raise AssertionError(f"route of unknown kind {r!r}: teach this test to enumerate it")

    out = []
    for path, methods in walk(app.routes):
        while "{" in path:
            a, b = path.index("{"), path.index("}")
            path = path[:a] + "x" + path[b + 1:]
        for method in sorted(methods):
            if method != "HEAD":
                out.append((method, path))
    return out


def test_every_route_but_the_probes_needs_the_key(srv: ServerProcess) -> None:
    routes = app_routes()
    paths = {p for _, p in routes}
    # The enumeration sees the routes of every API, admin and docs (a new route cannot be forgotten).
    assert {"/v1/chat/completions", "/v1/messages", "/v1/responses", "/metrics", "/backend/monitor", "/openapi.json"} <= paths
    from localai.server import webui

    ui = webui.open_paths()  # the web UI's page and static files, so it can ask for the key; no API route
    assert not ui & {p for p in paths if p.startswith(("/v1", "/models", "/backend", "/metrics"))}
    open_ = []
    for method, path in routes:
        r = httpx.request(method, srv.url + path, json={}, timeout=30)
        if path in ("/healthz", "/readyz"):
            assert r.status_code in (200, 503), path
            open_.append(path)
        elif path in ui:
            assert r.status_code == 200 and method == "GET", (method, path)
        else:
            assert r.status_code == 401, (method, path, r.status_code)
            r = httpx.request(method, srv.url + path, json={}, headers={"x-api-key": "wrong"}, timeout=30)
            assert r.status_code == 401, (method, path, r.status_code)
    assert sorted(set(open_)) == ["/healthz", "/readyz"]
    assert httpx.get(srv.url + "/metrics", headers=AUTH).status_code == 200


@pytest.mark.engine
@pytest.mark.parametrize("token", ["999999999", "-1"])
def test_out_of_vocabulary_logit_bias_is_400_on_llama_cpp(base_url: str, token: str) -> None:
    r = httpx.post(base_url + "/v1/completions", json={"model": "gemma", "prompt": "Hi", "max_tokens": 2, "logit_bias": {token: 5}},
                   timeout=120)
    assert r.status_code == 400, r.text
    assert "vocabulary" in r.json()["error"]["message"] and "'gemma'" in r.json()["error"]["message"]
    assert httpx.post(base_url + "/v1/completions", json={"model": "gemma", "prompt": "Hi", "max_tokens": 2}, timeout=120).status_code == 200
