"""Prometheus metrics of the data plane, served at `/metrics`.

Keeps KServe's four histograms (`request_{preprocess,predict,postprocess,explain}_seconds`, label
`model_name`) so existing dashboards work, and adds what KServe lacks: request counts by status,
request latency by model and protocol, requests in flight, and batch sizes. Each server has its own
registry (tests run several in one process); labelled children are cached so that recording a
request costs a few dictionary lookups.
"""

from __future__ import annotations

import time
from types import TracebackType

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

from flowdeck.serving.errors import ServingError

_LATENCY_BUCKETS = (.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_STAGES = ("preprocess", "predict", "postprocess", "explain")


class Metrics:
    """The server's metrics and their registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        for collector in (process_collector.ProcessCollector, platform_collector.PlatformCollector,
                          gc_collector.GCCollector):
            collector(registry=self.registry)
        self._requests = Counter("flowdeck_inference_requests", "Inference requests answered, by status code.",
                                 ["model", "protocol", "code"], registry=self.registry)
        self._latency = Histogram("flowdeck_inference_request_seconds",
                                  "Time from request received to response sent.", ["model", "protocol"],
                                  buckets=_LATENCY_BUCKETS, registry=self.registry)
        self._in_flight = Gauge("flowdeck_inference_requests_in_flight", "Inference requests being answered.",
                                ["model"], registry=self.registry)
        self._batch = Histogram("flowdeck_inference_batch_size", "Requests combined into one model call.",
                                ["model"], buckets=_BATCH_BUCKETS, registry=self.registry)
        self._stages = {stage: Histogram(f"request_{stage}_seconds", f"Time spent in the model's {stage} step.",
                                         ["model_name"], buckets=_LATENCY_BUCKETS, registry=self.registry)
                        for stage in _STAGES}
        self._children: dict[tuple[str, ...], object] = {}

    def stage_seconds(self, model: str, stage: str) -> Histogram:
        key = ("stage", model, stage)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._stages[stage].labels(model)
        return child  # type: ignore[return-value]

    def in_flight(self, model: str) -> Gauge:
        key = ("in_flight", model)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._in_flight.labels(model)
        return child  # type: ignore[return-value]

    def batch_size(self, model: str) -> Histogram:
        return self._batch.labels(model)

    def record(self, model: str, protocol: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = ("request", model, protocol, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = (self._requests.labels(model, protocol, str(status)),
                                           self._latency.labels(model, protocol))
        counter, histogram = child  # type: ignore[misc]
        counter.inc()
        histogram.observe(seconds)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class Measured:
    """`with Measured(metrics, model, protocol):` around answering one inference request: counts it in flight
    while it runs, then records its status (200; a `ServingError`'s own; else 500) and latency. A no-op when
    the server keeps no metrics (`metrics` None)."""

    __slots__ = ("metrics", "model", "protocol", "started")

    def __init__(self, metrics: Metrics | None, model: str, protocol: str) -> None:
        self.metrics, self.model, self.protocol = metrics, model, protocol

    def __enter__(self) -> None:
        self.started = time.perf_counter()
        if self.metrics is not None:
            self.metrics.in_flight(self.model).inc()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.metrics is None:
            return
        status = 200 if error is None else error.status if isinstance(error, ServingError) else 500
        self.metrics.in_flight(self.model).dec()
        self.metrics.record(self.model, self.protocol, status, time.perf_counter() - self.started)
