"""The admin web: ``create_app`` wires routes to what it is given and reads no
environment (``workflow_service.wsgi`` does that).

An entry point: it adds the kernel's routes (``/workflows``, ``/executions``, from the
:mod:`workflow_service.web` package, the kernel's HTTP layer) and then each feature's
``routes``, in the order of :data:`workflow_service.features.FEATURES`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import falcon
import peewee
import redis
from prometheus_client import CollectorRegistry

from shared.auth import decoder_for
from shared.broker import create_broker
from shared.db import check_current, open_database
from shared.http import ApiDocs
from shared.http.app import build_app
from workflow_service.db import database
from workflow_service.engine import Engine
from workflow_service.features import install
from workflow_service.migrations import all_migrations
from workflow_service.runtime import build_engine, cache_invalidator
from workflow_service.settings import WorkflowSettings
from workflow_service.web.executions import add_execution_routes
from workflow_service.web.workflows import add_workflow_routes
from workflow_service.workflows import WorkflowStore

API_VERSION = "1.0.0"


@dataclass
class Deps:
    """What the app talks to; tests pass their own."""

    db: peewee.Database
    broker: Any  # a Dramatiq broker (enqueue); its Redis client backs the cache version
    redis: redis.Redis
    registry: CollectorRegistry = dataclasses.field(default_factory=CollectorRegistry)
    engine: Engine | None = None


@dataclass
class AppContext:
    """Everything route-registering functions may need."""

    settings: WorkflowSettings
    deps: Deps
    engine: Engine
    store: WorkflowStore


def build_deps(settings: WorkflowSettings) -> Deps:
    db = open_database(settings.pooled_database_url)
    broker = create_broker(settings)
    return Deps(db=db, broker=broker, redis=broker.client)


def create_app(settings: WorkflowSettings, deps: Deps) -> falcon.App:
    """The WSGI app. Raises ``SchemaNotCurrent`` on an unmigrated database."""
    database.initialize(deps.db)
    with deps.db.connection_context():
        check_current(deps.db, all_migrations(settings.plugins))
    features = install(settings.plugins)

    engine = deps.engine or build_engine(settings, database, deps.broker, deps.redis)
    store = WorkflowStore(database, cache_invalidator(deps.redis, settings.namespace))
    context = AppContext(settings=settings, deps=deps, engine=engine, store=store)
    limit = settings.max_body_bytes

    def routes(app: falcon.App, docs: ApiDocs) -> None:
        add_workflow_routes(app, docs, store, engine, limit)
        add_execution_routes(app, docs, engine)
        for feature in features:
            for register in feature.routes:
                register(app, docs, context)

    def check_database() -> None:
        with deps.db.connection_context():
            deps.db.execute_sql("SELECT 1")

    return build_app(
        ApiDocs(
            "Workflow admin API",
            API_VERSION,
            "Workflow definitions, executions with their step log, tasks and the in-app inbox.",
        ),
        metrics_prefix="workflow",
        registry=deps.registry,
        decoder=decoder_for(settings, accept_service_tokens=False),
        db=deps.db,
        routes=routes,
        checks=[("database", check_database), ("redis", lambda: deps.redis.ping())],
        metrics_public=settings.metrics_public,
    )
