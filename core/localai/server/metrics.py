"""Prometheus metrics (``GET /metrics``), named after vLLM's where they mean the same, prefixed ``localai_``.

One :class:`Metrics` per app, on its own registry. Generations are measured in the engine (tokens,
time to first token, inter-token latency, end-to-end and queue time), HTTP requests by a middleware,
workers by the runtime. The ``api`` label (openai, anthropic, responses) comes from the request path
through a context variable, so the engine never sees HTTP.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from localai.errors import error_code

if TYPE_CHECKING:
    from localai.runtime.worker.client import GenerationStream
    from localai.types import GenerationChunk

CONTENT_TYPE = CONTENT_TYPE_LATEST

# The API a request came in through; "none" for work the server starts itself (preload).
current_api: contextvars.ContextVar[str] = contextvars.ContextVar("localai_api", default="none")

MODEL = ("model", "backend")
MODEL_API = ("model", "backend", "api")
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                   20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
               0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.replica_info = Info("localai_replica", "This server process among replicas sharing a state database: its id "
                                 "(what its running work is recorded under) and the database kind", registry=r)
        self.http_requests = Counter("localai_http_requests", "HTTP requests by API, route, method and status code",
                                     ("api", "route", "method", "status"), registry=r)
        self.http_latency = Histogram("localai_http_request_duration_seconds",
                                      "HTTP request latency until the response body ended (streams included)",
                                      ("api", "route", "method"), buckets=LATENCY_BUCKETS, registry=r)
        self.success = Counter("localai_request_success", "Generations that finished, by finish reason",
                               (*MODEL_API, "finished_reason"), registry=r)
        self.failures = Counter("localai_request_failure", "Generations that failed after being accepted, by error code",
                                (*MODEL_API, "code"), registry=r)
        self.running = Gauge("localai_num_requests_running", "Generations accepted by the backend and not yet ended",
                             MODEL, registry=r)
        self.waiting = Gauge("localai_num_requests_waiting",
                             "Generations waiting for their model (load, --max-active-backends) or for the backend to accept them",
                             MODEL, registry=r)
        self.rejections = Counter("localai_queue_rejections", "Requests refused because a queue was full or the server busy",
                                  MODEL_API, registry=r)
        self.prompt_tokens = Counter("localai_prompt_tokens", "Prompt tokens processed", MODEL_API, registry=r)
        self.generation_tokens = Counter("localai_generation_tokens", "Generated tokens", MODEL_API, registry=r)
        self.cached_tokens = Counter("localai_prompt_tokens_cached", "Prompt tokens served from the prompt cache",
                                     MODEL_API, registry=r)
        self.ttft = Histogram("localai_time_to_first_token_seconds", "Time from arrival to the first generated token (streamed requests)",
                              MODEL_API, buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("localai_inter_token_latency_seconds", "Time between successive generated chunks (streamed requests)",
                             MODEL_API, buckets=ITL_BUCKETS, registry=r)
        self.e2e = Histogram("localai_e2e_request_latency_seconds", "Time from arrival to the end of the generation",
                             MODEL_API, buckets=LATENCY_BUCKETS, registry=r)
        self.queue_time = Histogram("localai_request_queue_time_seconds",
                                    "Time from arrival until the backend accepted the generation (model load and waits included)",
                                    MODEL_API, buckets=LATENCY_BUCKETS, registry=r)
        self.load_seconds = Histogram("localai_model_load_seconds", "Time to start a worker and load the model",
                                      MODEL, buckets=LOAD_BUCKETS, registry=r)
        self.restarts = Counter("localai_worker_restarts",
                                "Worker processes that ended, by reason (crash, busy_watchdog, idle, eviction, manual, "
                                "load_failure, shutdown); the next request starts a new one", (*MODEL, "reason"), registry=r)

    def watch_runtime(self, loaded: Callable[[], dict[str, Any]]) -> None:
        """Export the loaded models (``localai_models_loaded``), read from the runtime at each scrape."""
        self.registry.register(_LoadedCollector(loaded))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- runtime -------------------------------------------------------------------------------

    def model_loaded(self, model: str, backend: str, seconds: float) -> None:
        self.load_seconds.labels(model, backend).observe(seconds)

    def worker_exited(self, model: str, backend: str, reason: str) -> None:
        self.restarts.labels(model, backend, reason).inc()

    # -- engine --------------------------------------------------------------------------------

    def generation(self, model: str, backend: str, started: float, streamed: bool = True) -> GenerationMetrics:
        return GenerationMetrics(self, model, backend, current_api.get(), started, streamed)

    def rejected(self, model: str, backend: str) -> None:
        self.rejections.labels(model, backend, current_api.get()).inc()


class GenerationMetrics:
    """One generation's measurements, from arrival (``started``, monotonic) to its end."""

    def __init__(self, metrics: Metrics, model: str, backend: str, api: str, started: float, streamed: bool = True) -> None:
        self.m = metrics
        # A non-streamed request's backend may deliver the whole text at the end: its chunk times say nothing
        # about token latency, so only streamed requests feed the TTFT and inter-token histograms.
        self.streamed = streamed
        self.labels = (model, backend, api)
        self.started = started
        self.last: float | None = None
        self._itl: Any = None
        self.is_waiting = True
        self.is_running = False
        self.done = False
        metrics.waiting.labels(model, backend).inc()

    def accepted(self) -> None:
        self._stop_waiting()
        self.is_running = True
        self.m.running.labels(*self.labels[:2]).inc()
        self.m.queue_time.labels(*self.labels).observe(time.monotonic() - self.started)

    def refused(self, exc: BaseException) -> None:
        self._stop_waiting()
        if error_code(exc) == "queue_full":  # "server_busy" (no room to load) is counted by the runtime
            self.m.rejections.labels(*self.labels).inc()

    def chunk(self, chunk: GenerationChunk) -> None:
        now = time.monotonic()
        if self.streamed and (chunk.text or chunk.tokens):
            if self.last is None:
                self.m.ttft.labels(*self.labels).observe(now - self.started)
            else:
                if self._itl is None:  # looked up once: ``labels()`` takes a lock and hashes, per token otherwise
                    self._itl = self.m.itl.labels(*self.labels)
                self._itl.observe(now - self.last)
            self.last = now
        if chunk.finish_reason is not None:
            usage = chunk.usage
            if usage is not None:
                self.m.prompt_tokens.labels(*self.labels).inc(usage.prompt_tokens)
                self.m.generation_tokens.labels(*self.labels).inc(usage.completion_tokens)
                self.m.cached_tokens.labels(*self.labels).inc(usage.cached_tokens)
            self.m.success.labels(*self.labels, chunk.finish_reason).inc()
            self.m.e2e.labels(*self.labels).observe(now - self.started)
            self.done = True
            self.end()

    def failed(self, exc: BaseException) -> None:
        if not self.done:
            self.done = True
            self.m.failures.labels(*self.labels, error_code(exc) or "error").inc()
        self.end()

    def end(self) -> None:
        self._stop_waiting()
        if self.is_running:
            self.is_running = False
            self.m.running.labels(*self.labels[:2]).dec()

    def _stop_waiting(self) -> None:
        if self.is_waiting:
            self.is_waiting = False
            self.m.waiting.labels(*self.labels[:2]).dec()

    def wrap(self, stream: GenerationStream) -> MeasuredStream:
        return MeasuredStream(stream, self)


class MeasuredStream:
    """A worker's chunk stream that reports each chunk, failure and close to its :class:`GenerationMetrics`."""

    def __init__(self, stream: GenerationStream, gm: GenerationMetrics) -> None:
        self.stream = stream
        self.gm = gm

    def __aiter__(self) -> MeasuredStream:
        return self

    async def __anext__(self) -> GenerationChunk:
        try:
            chunk = await self.stream.__anext__()
        except StopAsyncIteration:
            self.gm.end()
            raise
        except BaseException as exc:
            self.gm.failed(exc)
            raise
        self.gm.chunk(chunk)
        return chunk

    async def aclose(self) -> None:
        if not self.gm.done:
            self.gm.done = True
            self.gm.m.success.labels(*self.gm.labels, "cancelled").inc()
        self.gm.end()
        await self.stream.aclose()


class _LoadedCollector:
    def __init__(self, loaded: Callable[[], dict[str, Any]]) -> None:
        self.loaded = loaded

    def describe(self) -> Iterable[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        models = GaugeMetricFamily("localai_models_loaded", "Models with a running worker, by backend", labels=["backend"])
        states = GaugeMetricFamily("localai_model_state", "1 for each loaded model's current state (loading, ready, busy, unloading)",
                                   labels=["model", "backend", "state"])
        counts: dict[str, int] = {}
        for name, worker in self.loaded().items():
            counts[worker.backend] = counts.get(worker.backend, 0) + 1
            states.add_metric([name, worker.backend, worker.state], 1)
        for backend, n in sorted(counts.items()):
            models.add_metric([backend], n)
        yield models
        yield states
