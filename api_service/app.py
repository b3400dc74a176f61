"""The api's Falcon application: ``create_app`` wires routes to the resources it is
given and reads no environment (``api_service.wsgi`` does that)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import falcon
import peewee
from prometheus_client import CollectorRegistry, multiprocess

from api_service import errors
from api_service.jobs import add_job_routes
from api_service.kinds import add_routes as add_entity_routes
from api_service.metrics import OutboxBacklogCollector
from api_service.migrations import MIGRATIONS
from api_service.models import database
from api_service.outbox import OutboxPublisher
from api_service.policies import PolicyService
from api_service.resources import (
    PolicyCollection,
    PolicyItem,
    PolicyRefusals,
    PolicyTransitions,
    PolicyVersions,
)
from api_service.reviews import ReviewService
from api_service.reviews import add_routes as add_review_routes
from api_service.settings import ApiSettings
from api_service.tenant_settings import TenantSettingsStore
from api_service.tenant_settings import add_routes as add_tenant_settings_routes
from shared.auth import decoder_for
from shared.broker import WakingRedisBroker, create_broker
from shared.db import check_current, open_database, utcnow
from shared.http import ApiDocs
from shared.http.app import build_app
from shared.jobstatus import JobStatusStore

API_VERSION = "1.0.0"


@dataclass
class Deps:
    """What the app talks to; tests pass their own (a test database, a fake clock)."""

    db: peewee.Database
    broker: WakingRedisBroker
    clock: Callable[[], datetime] = utcnow
    #: Reads job-status records for /jobs; None: a store on the broker's Redis client.
    job_store: Any = None
    #: Publishes trigger events after commit; None: one on ``db`` and ``broker`` (set
    #: here by ``create_app``, so whoever made the app can close it).
    outbox: OutboxPublisher | None = None
    registry: CollectorRegistry = dataclasses.field(default_factory=CollectorRegistry)


def build_deps(settings: ApiSettings) -> Deps:
    """Real dependencies for ``settings``: a pooled database and a publishing broker
    whose Redis client gives up quickly (the relay delivers what a request could not)."""
    db = open_database(settings.pooled_database_url)
    broker = create_broker(dataclasses.replace(settings, redis_url=settings.publish_redis_url))
    return Deps(db=db, broker=broker)


def create_app(settings: ApiSettings, deps: Deps) -> falcon.App:
    """The WSGI app. Raises ``SchemaNotCurrent`` on an unmigrated database."""
    database.initialize(deps.db)
    with deps.db.connection_context():
        check_current(deps.db, MIGRATIONS)
    if hasattr(deps.db, "close_all"):
        # A pool keeps the connection just used; with gunicorn's preload_app it would
        # be inherited by every worker. Start each process with an empty pool.
        deps.db.close_all()

    if deps.outbox is None:
        deps.outbox = OutboxPublisher(
            deps.db,
            deps.broker,
            deps.clock,
            claim_seconds=settings.outbox_claim_seconds,
            pause_seconds=settings.publish_pause_seconds,
        )
    outbox = deps.outbox
    policies = PolicyService(deps.db, outbox, deps.clock)
    limit = settings.max_body_bytes
    job_store = deps.job_store or JobStatusStore(deps.broker.client, settings.namespace)

    def routes(app: falcon.App, docs: ApiDocs) -> None:
        docs.add_route(app, "/policies", PolicyCollection(policies, limit))
        docs.add_route(app, "/policies/{policy_id}", PolicyItem(policies, limit))
        docs.add_route(app, "/policies/{policy_id}/transitions", PolicyTransitions(policies, limit))
        docs.add_route(app, "/policies/{policy_id}/versions", PolicyVersions(policies))
        docs.add_route(app, "/policies/{policy_id}/refusals", PolicyRefusals(policies))
        add_entity_routes(app, docs, settings, deps.db, outbox, deps.clock)
        add_review_routes(app, docs, ReviewService(deps.db, outbox, deps.clock), limit)
        add_tenant_settings_routes(app, docs, TenantSettingsStore(deps.db, deps.clock), limit)
        add_job_routes(app, docs, job_store)

    scraped = deps.registry
    if settings.prometheus_multiproc_dir:
        # Each gunicorn worker counts its own requests; in prometheus-client's
        # multiprocess mode they write them to files there and a scrape sums them all.
        scraped = CollectorRegistry()
        multiprocess.MultiProcessCollector(scraped, path=settings.prometheus_multiproc_dir)
    scraped.register(OutboxBacklogCollector(deps.db, deps.clock))
    return build_app(
        ApiDocs(
            "Policy API",
            API_VERSION,
            "Policies with a lifecycle; every change publishes a trigger event to the "
            "governance.policy queue.",
        ),
        metrics_prefix="api",
        registry=deps.registry,
        scraped=scraped,
        decoder=decoder_for(settings, accept_service_tokens=True),
        db=deps.db,
        routes=routes,
        checks=[
            ("database", lambda: deps.db.execute_sql("SELECT 1")),
            ("redis", lambda: deps.broker.client.ping()),
        ],
        metrics_public=settings.metrics_public,
        error_handlers=[errors.install],
    )
