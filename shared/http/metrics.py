"""Request metrics (count and latency per route template) and the /metrics resource."""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from shared.http.access import require_operator
from shared.http.openapi import Operation


class RequestMetrics:
    """Falcon middleware: request count and latency per route template, method, status."""

    def __init__(self, registry: CollectorRegistry, prefix: str):
        self.requests = Counter(
            f"{prefix}_http_requests",
            "HTTP requests handled",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{prefix}_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def process_request(self, req, resp):
        req.context.started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded):
        started = getattr(req.context, "started", None)
        if started is None:
            return
        # Unknown paths share one label so scanners cannot blow up the label set.
        route = req.uri_template or "<unmatched>"
        self.latency.labels(route, req.method).observe(time.perf_counter() - started)
        self.requests.labels(route, req.method, str(resp.status_code)).inc()


class MetricsResource:
    """/metrics: counts across every tenant, so an ``operator`` token is required (a
    tenant's ``admin`` is not enough) unless ``public`` (METRICS_PUBLIC=true, for a
    port that only the scraper can reach)."""

    def __init__(self, registry: CollectorRegistry, *, public: bool = False):
        self.registry = registry
        self.auth_public = public
        self.docs = {
            "GET": Operation(
                "Prometheus metrics in the text exposition format",
                roles=() if public else ("operator",),
            )
        }

    def on_get(self, req, resp):
        """Prometheus metrics in the text exposition format."""
        if not self.auth_public:
            require_operator(req, "Metrics span every tenant")
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.registry)
