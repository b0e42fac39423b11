"""``GET /metrics``: Prometheus text that prometheus_client parses, whose counters move by exactly what a request did."""

from __future__ import annotations

import os
import signal

import anthropic
import httpx
import pytest
from localai.testing import ServerProcess
from serving import FAKE_ENV, complete, delta, metric, models, monitor, scrape, wait_for

MODELS = {"echo.yaml": "name: echo\nbackend: fake\n", "other.yaml": "name: other\nbackend: fake\n"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with ServerProcess(models(tmp_path_factory.mktemp("m"), MODELS), env=FAKE_ENV) as s:
        yield s


def test_a_streamed_completion_feeds_token_latencies(srv: ServerProcess) -> None:
    assert complete(srv.url, "echo", "warm").status_code == 200
    before = scrape(srv.url)
    r = complete(srv.url, "echo", "one two three four five", stream=True)
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
    after = scrape(srv.url)
    lab = {"model": "echo", "backend": "fake", "api": "openai"}
    assert delta(before, after, "localai_time_to_first_token_seconds_count", **lab) == 1
    assert delta(before, after, "localai_inter_token_latency_seconds_count", **lab) == 4  # 5 chunks, 4 gaps
    assert delta(before, after, "localai_e2e_request_latency_seconds_count", **lab) == 1


def test_a_completion_moves_each_counter_by_what_it_did(srv: ServerProcess) -> None:
    assert complete(srv.url, "echo", "warm").status_code == 200  # the load is measured once, not per request
    before = scrape(srv.url)
    r = complete(srv.url, "echo", "one two three four five")
    assert r.status_code == 200
    usage = r.json()["usage"]
    after = scrape(srv.url)
    lab = {"model": "echo", "backend": "fake", "api": "openai"}
    assert usage["prompt_tokens"] == 5 and usage["completion_tokens"] == 5
    assert delta(before, after, "localai_prompt_tokens_total", **lab) == 5
    assert delta(before, after, "localai_generation_tokens_total", **lab) == 5
    assert delta(before, after, "localai_prompt_tokens_cached_total", **lab) == 0
    assert delta(before, after, "localai_request_success_total", finished_reason="stop", **lab) == 1
    # A plain request's chunk times are not token latencies (a backend may send its text at the end): only
    # streamed requests feed TTFT and inter-token latency.
    assert delta(before, after, "localai_time_to_first_token_seconds_count", **lab) == 0
    assert delta(before, after, "localai_inter_token_latency_seconds_count", **lab) == 0
    assert delta(before, after, "localai_e2e_request_latency_seconds_count", **lab) == 1
    assert delta(before, after, "localai_request_queue_time_seconds_count", **lab) == 1
    assert delta(before, after, "localai_http_requests_total", api="openai", route="/v1/completions", method="POST", status="200") == 1
    assert delta(before, after, "localai_http_request_duration_seconds_count", api="openai", route="/v1/completions") == 1
    assert delta(before, after, "localai_model_load_seconds_count", model="echo") == 0
    assert metric(after, "localai_model_load_seconds_count", model="echo", backend="fake") == 1
    assert metric(after, "localai_num_requests_running", model="echo") == 0
    assert metric(after, "localai_num_requests_waiting", model="echo") == 0
    assert metric(after, "localai_models_loaded", backend="fake") >= 1
    assert metric(after, "localai_model_state", model="echo", state="ready") == 1


def test_streams_errors_and_apis_are_labelled(srv: ServerProcess) -> None:
    before = scrape(srv.url)
    client = anthropic.Anthropic(base_url=srv.url, api_key="x", _strict_response_validation=True)
    with client.messages.stream(model="other", max_tokens=3, messages=[{"role": "user", "content": "a b c d e f"}]) as s:
        final = s.get_final_message()
    assert complete(srv.url, "nope", "x").status_code == 404
    after = scrape(srv.url)
    lab = {"model": "other", "backend": "fake", "api": "anthropic"}
    assert delta(before, after, "localai_generation_tokens_total", **lab) == final.usage.output_tokens
    assert delta(before, after, "localai_request_success_total", finished_reason="length", **lab) == 1
    assert delta(before, after, "localai_http_requests_total", api="anthropic", route="/v1/messages", status="200") == 1
    assert delta(before, after, "localai_http_requests_total", api="openai", route="/v1/completions", status="404") == 1


def test_worker_crash_is_counted_by_reason(srv: ServerProcess) -> None:
    complete(srv.url, "other", "x")
    before = scrape(srv.url)
    os.kill(monitor(srv.url)["other"]["pid"], signal.SIGKILL)
    assert wait_for(lambda: "other" not in monitor(srv.url))
    after = scrape(srv.url)
    assert delta(before, after, "localai_worker_restarts_total", model="other", reason="crash") == 1


def test_metrics_text_is_prometheus_format(srv: ServerProcess) -> None:
    text = httpx.get(srv.url + "/metrics").text
    assert "# TYPE localai_time_to_first_token_seconds histogram" in text
    assert "# TYPE localai_http_requests_total counter" in text
