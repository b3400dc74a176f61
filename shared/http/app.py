"""The app builder: the wiring every service's web app shares, written once.

Both services' apps answer errors as JSON, count requests, send the security headers,
refuse over-long URLs and NUL parameters, authenticate bearer tokens, hold one database
connection per request, and serve /healthz, /readyz, /metrics and /openapi.json. A
service's ``create_app`` gives :func:`build_app` what differs (its name in metrics, its
token decoder, its database, its routes, its readiness checks) and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import falcon
import peewee
from prometheus_client import CollectorRegistry

from shared.auth import AuthMiddleware, TokenDecoder
from shared.db import FalconConnectionScope
from shared.http.errors import install_error_handling
from shared.http.headers import SecurityHeaders
from shared.http.input import QueryGuard
from shared.http.metrics import RequestMetrics
from shared.http.openapi import ApiDocs
from shared.http.probes import ReadinessCheck, add_standard_routes

#: Adds a service's routes (and anything else it needs) to the app, through ``docs``.
RouteRegistrar = Callable[[falcon.App, ApiDocs], None]


def build_app(
    docs: ApiDocs,
    *,
    metrics_prefix: str,
    registry: CollectorRegistry,
    decoder: TokenDecoder,
    db: peewee.Database,
    routes: RouteRegistrar,
    checks: Sequence[ReadinessCheck],
    scraped: CollectorRegistry | None = None,
    metrics_public: bool = False,
    error_handlers: Sequence[Callable[[falcon.App], None]] = (),
) -> falcon.App:
    """A Falcon app with the shared middleware, error handling and standard routes.

    ``registry`` receives the request metrics; ``scraped`` is what /metrics serves
    (default ``registry``: a multiprocess server scrapes a collector over every
    worker's files instead). ``error_handlers`` install a service's own domain error
    mappings after the shared ones, so theirs win for their exception types.
    """
    app = falcon.App(
        middleware=[  # type: ignore[arg-type]  # falcon's middleware protocols
            # First, so its process_response runs last, over error answers too.
            SecurityHeaders(),
            RequestMetrics(registry, metrics_prefix),
            QueryGuard(),
            AuthMiddleware(decoder),
            FalconConnectionScope(db),
        ]
    )
    install_error_handling(app)
    for install in error_handlers:
        install(app)
    routes(app, docs)
    add_standard_routes(
        app,
        docs,
        registry=scraped if scraped is not None else registry,
        checks=checks,
        metrics_public=metrics_public,
    )
    return app
