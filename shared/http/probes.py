"""Probes (/healthz, /readyz) and the routes every service serves beside its own."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import falcon
from prometheus_client import CollectorRegistry

from shared.http.errors import ApiError
from shared.http.metrics import MetricsResource
from shared.http.openapi import ApiDocs, OpenAPIResource, Operation

log = logging.getLogger(__name__)

ReadinessCheck = tuple[str, Callable[[], object]]  # a check raises to fail


class HealthResource:
    auth_public = True

    def on_get(self, req, resp):
        """Liveness: the process answers."""
        resp.media = {"status": "ok"}


class ReadinessResource:
    """Readiness: every named check passes (a check raises to fail).

    The answer is public, so it says only ``ok`` or ``failed`` per check; what failed
    and why (hosts, ports, error text) goes to the log.
    """

    auth_public = True
    docs = {"GET": Operation("Readiness: 503 naming the dependency that failed", errors=(503,))}

    def __init__(self, checks: Sequence[ReadinessCheck]):
        self.checks = list(checks)

    def on_get(self, req, resp):
        """Readiness: 503 naming the dependency that failed."""
        results: dict[str, str] = {}
        failed = []
        for name, check in self.checks:
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
                results[name] = "failed"
                failed.append(name)
            else:
                results[name] = "ok"
        if failed:
            raise ApiError(
                falcon.HTTP_503,
                "Not ready",
                f"Failing checks: {', '.join(failed)}.",
                checks=results,
            )
        resp.media = {"status": "ready", "checks": results}


def add_standard_routes(
    app: falcon.App,
    docs: ApiDocs,
    *,
    registry: CollectorRegistry,
    checks: Sequence[ReadinessCheck],
    metrics_public: bool = False,
) -> None:
    """/healthz, /readyz, /metrics (an operator's, unless ``metrics_public``) and
    /openapi.json."""
    docs.add_route(app, "/healthz", HealthResource())
    docs.add_route(app, "/readyz", ReadinessResource(checks))
    docs.add_route(app, "/metrics", MetricsResource(registry, public=metrics_public))
    docs.add_route(app, "/openapi.json", OpenAPIResource(docs))
