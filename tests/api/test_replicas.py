"""Two replicas of the server sharing one PostgreSQL behind HAProxy: any replica answers for any stored response.

Real PostgreSQL (a throw-away cluster) and a real HAProxy, both Debian's binaries, started here and stopped after
(``localai.testing.services``); two ``localai run`` processes on the default model with ``--database-url``.
The replica-killing test runs last: it takes replica A down for good.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import random
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api.test_responses import LONG, check_stream, iter_sse, stream_raw, validate_resource, wait_for
from gallery_server import GalleryServer
from localai.state.leases import LEASE, RENEW
from localai.testing import ServerProcess, default_gguf, missing, write_models
from localai.testing.services import HAProxy, PostgresServer
from openai import OpenAI

pytestmark = pytest.mark.engine

MODELS = {"gemma.yaml": """
name: gemma
backend: llama-cpp
context_size: 2048
threads: 1
parameters:
  model: gemma-3-270m-q4_k_m.gguf
  temperature: 0
"""}
LEASE_BOUND = LEASE + 2 * RENEW + 10  # a lapsed lease is noticed within a renewal; room for a loaded 2-core machine


class Cluster:
    def __init__(self, pg: PostgresServer, a: ServerProcess, b: ServerProcess, lb: HAProxy, gallery: GalleryServer) -> None:
        self.pg, self.a, self.b, self.lb, self.gallery = pg, a, b, lb, gallery

    def client(self, url: str) -> OpenAI:
        return OpenAI(base_url=url + "/v1", api_key="unused", _strict_response_validation=True, max_retries=0)


def gallery_index(gallery: GalleryServer) -> str:
    """A loopback gallery offering the default GGUF under two names, one served slowly (to cancel mid-way)."""
    gguf = default_gguf()
    sha = hashlib.sha256(gguf.read_bytes()).hexdigest()
    gallery.files["/gemma.gguf"] = gallery.files["/slow/gemma.gguf"] = gguf
    gallery.delay["/slow/gemma.gguf"] = 0.05
    entries = [{"name": name, "overrides": {"backend": "llama-cpp", "parameters": {"model": f"{name}.gguf"}},
                "files": [{"filename": f"{name}.gguf", "sha256": sha, "uri": gallery.url + path}]}
               for name, path in (("gemma-copy", "/gemma.gguf"), ("gemma-slow", "/slow/gemma.gguf"))]
    gallery.texts["/index.yaml"] = json.dumps(entries)  # YAML's superset
    return json.dumps([{"name": "test", "url": gallery.url + "/index.yaml"}])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    models = write_models(root / "models", MODELS)  # one folder for both, as on a shared volume
    try:
        pg = PostgresServer()
    except FileNotFoundError as exc:
        missing(str(exc))
    replicas: list[ServerProcess] = []
    lb: HAProxy | None = None
    gallery = GalleryServer().__enter__()
    try:
        pg.start()  # inside the try: a start that fails half-way is still stopped and removed
        env = {"LOCALAI_DATABASE_URL": pg.url}
        galleries = gallery_index(gallery)
        for name in ("a", "b"):  # each its own data folder: nothing shared but the database and the models
            replicas.append(ServerProcess(models, data_path=root / f"data-{name}", env=env, args=["--galleries", galleries],
                                          log_path=root / f"replica-{name}.log").start())
        for srv in replicas:  # load the model on both before timing anything
            httpx.post(srv.url + "/v1/completions", json={"model": "gemma", "prompt": "Hi", "max_tokens": 1},
                       timeout=300).raise_for_status()
        try:
            lb = HAProxy([f"127.0.0.1:{srv.port}" for srv in replicas])
        except FileNotFoundError as exc:
            missing(str(exc))
        lb.start()
        yield Cluster(pg, replicas[0], replicas[1], lb, gallery)
    finally:
        if lb is not None:
            lb.stop()
        for srv in replicas:
            srv.stop()
        pg.stop()
        gallery.__exit__(None, None, None)


def test_a_chain_of_turns_alternating_replicas_equals_the_chain_on_one(cluster: Cluster) -> None:
    a, b = cluster.client(cluster.a.url), cluster.client(cluster.b.url)
    turns = ["My name is Ada.", "I live in Paris.", "I like tea.", "What is my name?", "Where do I live?"]

    def chain(clients: list[OpenAI]) -> list[str]:
        previous, texts = None, []
        for turn, c in zip(turns, clients):
            r = c.responses.create(model="gemma", input=turn, previous_response_id=previous, store=True,
                                   max_output_tokens=12, temperature=0)
            assert r.status in ("completed", "incomplete"), r.status
            texts.append(r.output_text)
            previous = r.id
        return texts

    alternating = chain([a, b, a, b, a])
    assert alternating == chain([a] * 5)
    assert any(alternating)
    # Each replica says which it is on /metrics (Prometheus adds the scrape's instance label beside it).
    ids = set()
    for srv in (cluster.a, cluster.b):
        info = [line for line in httpx.get(srv.url + "/metrics", timeout=30).text.splitlines()
                if line.startswith("localai_replica_info{")]
        assert len(info) == 1 and 'database="postgresql"' in info[0], info
        ids.add(info[0].split('replica="')[1].split('"')[0])
    assert len(ids) == 2


def test_a_background_response_on_a_is_polled_resumed_and_cancelled_through_b(cluster: Cluster) -> None:
    a, b = cluster.client(cluster.a.url), cluster.client(cluster.b.url)
    started = a.responses.create(model="gemma", input=LONG, max_output_tokens=1500, background=True)
    running = wait_for(b, started.id, {"in_progress", "completed", "incomplete", "failed"}, timeout=60)
    assert running.status == "in_progress"
    # B streams A's run from the store, resuming after event 2, while A writes it.
    seen: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{cluster.b.url}/v1/responses/{started.id}?stream=true&starting_after=2", timeout=60) as r:
        assert r.status_code == 200
        for _, data in iter_sse(r.iter_lines()):
            seen.append(json.loads(data))
            if sum(ev["type"] == "response.output_text.delta" for ev in seen) >= 60:
                break
    assert sum(ev["type"] == "response.output_text.delta" for ev in seen) >= 60, seen[-1]  # followed live, not a snapshot
    assert seen[0]["sequence_number"] == 3
    assert [ev["sequence_number"] for ev in seen] == list(range(3, 3 + len(seen)))
    cancelled = b.responses.cancel(started.id)
    assert cancelled.status == "cancelled"
    assert all(item.status == "incomplete" for item in cancelled.output)
    on_a = a.responses.with_raw_response.retrieve(started.id).http_response.json()
    validate_resource(on_a)
    assert on_a["status"] == "cancelled"
    # The whole stream, replayed through B, ends with the cancel, numbered without a gap.
    full = check_stream(stream_raw(cluster.b.url, f"/v1/responses/{started.id}?stream=true", method="GET"),
                        first=("response.created", "response.in_progress"))
    assert full[-1]["type"] == "response.cancelled" or full[-1]["response"]["status"] == "cancelled"
    # A's model is free again.
    assert a.responses.create(model="gemma", input="Hi", max_output_tokens=1).status in ("completed", "incomplete")


def job(url: str, uuid: str) -> dict[str, Any]:
    r = httpx.get(f"{url}/models/jobs/{uuid}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def settle(url: str, uuid: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not (state := job(url, uuid))["processed"] and time.monotonic() < deadline:
        time.sleep(0.2)
    return state


def test_a_gallery_install_through_a_is_followed_and_cancelled_through_b(cluster: Cluster) -> None:
    started = httpx.post(cluster.a.url + "/models/apply", json={"id": "test@gemma-copy"}, timeout=30).json()
    assert job(cluster.b.url, started["uuid"])["gallery_element_name"] == "gemma-copy"  # known to B at once
    done = settle(cluster.b.url, started["uuid"])
    assert done["processed"] and done["error"] is None and done["message"] == "completed", done
    assert started["uuid"] in httpx.get(cluster.b.url + "/models/jobs", timeout=30).json()
    # The models folder is shared: B serves the model A installed once it re-reads the folder.
    assert httpx.post(cluster.b.url + "/models/reload", timeout=30).status_code == 200
    r = httpx.post(cluster.b.url + "/v1/completions", json={"model": "gemma-copy", "prompt": "Hi", "max_tokens": 2}, timeout=120)
    assert r.status_code == 200, r.text
    # A slow install started through A, cancelled through B: A stops it when it next renews its lease.
    slow = httpx.post(cluster.a.url + "/models/apply", json={"id": "test@gemma-slow"}, timeout=30).json()
    deadline = time.monotonic() + 60
    while job(cluster.b.url, slow["uuid"])["progress"] <= 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    cancel = httpx.post(f"{cluster.b.url}/models/jobs/{slow['uuid']}/cancel", timeout=30)
    assert cancel.status_code == 200 and cancel.json()["success"] is True, cancel.text
    cancelled = settle(cluster.b.url, slow["uuid"], timeout=30)
    assert cancelled["cancelled"] is True and cancelled["processed"] is True, cancelled
    assert httpx.post(f"{cluster.b.url}/models/jobs/{slow['uuid']}/cancel", timeout=30).status_code == 409


def test_while_postgresql_restarts_stored_requests_get_503_and_then_succeed(cluster: Cluster) -> None:
    kept = cluster.client(cluster.lb.url).responses.create(model="gemma", input="Hello", max_output_tokens=4)
    cluster.pg.down()
    try:
        for srv in (cluster.a, cluster.b):
            r = httpx.post(srv.url + "/v1/responses", json={"model": "gemma", "input": "Hi", "max_output_tokens": 2},
                           timeout=60)
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "state_store_unavailable" and "state database is unavailable" in err["message"]
            assert r.headers.get("retry-after") == "1"
            ready = httpx.get(srv.url + "/readyz", timeout=30)
            assert ready.status_code == 503 and "state database" in ready.json()["reason"]
            # What needs no stored state is served as usual.
            chat = httpx.post(srv.url + "/v1/chat/completions", timeout=60,
                              json={"model": "gemma", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
            assert chat.status_code == 200, chat.text
    finally:
        cluster.pg.up()
    for srv in (cluster.a, cluster.b):  # reconnected by themselves, nothing lost
        assert httpx.get(srv.url + "/readyz", timeout=30).status_code == 200
        c = cluster.client(srv.url)
        assert c.responses.retrieve(kept.id).output_text == kept.output_text
        assert c.responses.create(model="gemma", input="Hi", max_output_tokens=2).status in ("completed", "incomplete")


def test_a_thousand_mixed_requests_through_the_balancer(cluster: Cluster) -> None:
    url = cluster.lb.url
    rng = random.Random(7)
    stored: list[str] = []

    def one(i: int) -> tuple[int, str]:
        kind = rng.choice(["chat", "completion", "models", "response", "retrieve", "tokenize"])
        with httpx.Client(base_url=url, timeout=120) as h:
            if kind == "chat":
                r = h.post("/v1/chat/completions", json={"model": "gemma", "max_tokens": 2,
                                                         "messages": [{"role": "user", "content": f"Say {i}"}]})
            elif kind == "completion":
                r = h.post("/v1/completions", json={"model": "gemma", "prompt": f"{i} and", "max_tokens": 2, "stream": True})
                assert r.text.rstrip().endswith("data: [DONE]"), r.text[-200:]
            elif kind == "models":
                r = h.get("/v1/models")
            elif kind == "response" or not stored:
                r = h.post("/v1/responses", json={"model": "gemma", "input": f"Count {i}", "max_output_tokens": 2})
                if r.status_code == 200:
                    stored.append(r.json()["id"])
            elif kind == "retrieve":
                r = h.get(f"/v1/responses/{rng.choice(stored)}")
            else:
                r = h.post("/tokenize", json={"model": "gemma", "content": f"token {i}"})
        return r.status_code, kind

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(1000)))
    codes: dict[int, int] = {}
    for code, _ in results:
        codes[code] = codes.get(code, 0) + 1
    assert codes == {200: 1000}, codes


def test_a_replica_killed_mid_stream_fails_cleanly_and_b_answers(cluster: Cluster) -> None:
    """Last in this module: replica A stays down."""
    before = cluster.client(cluster.lb.url).responses.create(model="gemma", input="Keep me", max_output_tokens=3)
    events: list[dict[str, Any]] = []
    error: Exception | None = None
    try:
        with httpx.stream("POST", cluster.a.url + "/v1/responses", timeout=60,
                          json={"model": "gemma", "input": LONG, "max_output_tokens": 1500, "stream": True}) as r:
            for _, data in iter_sse(r.iter_lines()):
                if data == "[DONE]":
                    break
                events.append(json.loads(data))
                if len(events) == 8:
                    os.kill(cluster.a.proc.pid, signal.SIGKILL)
    except httpx.HTTPError as exc:  # the connection closed mid-stream: what a client sees of a dead server
        error = exc
    assert error is not None or events[-1]["type"] not in ("response.completed", "response.incomplete")
    rid = events[0]["response"]["id"]
    # The retry through the balancer lands on B (A refuses connections; HAProxy re-dispatches and marks it down).
    retry = cluster.client(cluster.lb.url).responses.create(model="gemma", input="Hi again", max_output_tokens=3)
    assert retry.status in ("completed", "incomplete")
    b = cluster.client(cluster.b.url)
    # A's unfinished response does not stay in_progress: B fails it once A's lease lapses.
    lapsed = wait_for(b, rid, {"failed", "completed", "incomplete", "cancelled"}, timeout=LEASE_BOUND)
    assert lapsed.status == "failed", lapsed.status
    assert lapsed.error is not None and "replica" in lapsed.error.message
    replay = check_stream(stream_raw(cluster.b.url, f"/v1/responses/{rid}?stream=true", method="GET"))
    assert replay[-1]["type"] == "response.failed"
    assert b.responses.retrieve(before.id).output_text == before.output_text  # nothing stored is lost
