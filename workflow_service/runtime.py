"""Builds the engine a process needs from its settings, database and broker.

Part of the entry points (the web app, the worker's actors and the scheduler build
their engine here): it installs the features (:mod:`workflow_service.features`) and
gives the engine what they provide, the user directory and the hooks every event runs
through before dispatch.
"""

from __future__ import annotations

import contextlib
from typing import Any

import peewee
import redis

from workflow_service import features
from workflow_service.apiclient import ApiClient
from workflow_service.cache import ActiveWorkflowCache, bump_version
from workflow_service.engine import Engine
from workflow_service.settings import WorkflowSettings


def build_engine(
    settings: WorkflowSettings,
    db: peewee.Database | peewee.DatabaseProxy,
    broker: Any,
    client: redis.Redis,
    api: ApiClient | None = None,
) -> Engine:
    installed = features.install(settings.plugins)
    return Engine(
        settings=settings,
        db=db,
        broker=broker,
        api=api
        or ApiClient(
            settings.api_url, settings.service_token_secret, timeout=settings.api_timeout_s
        ),
        cache=ActiveWorkflowCache(client, settings.namespace, settings.workflow_cache_ttl_s),
        directory=features.make_directory(installed),
        event_hooks=features.make_event_hooks(broker, installed),
    )


def cache_invalidator(client: redis.Redis, namespace: str):
    def invalidate(tenant_id: str) -> None:
        # If Redis is down, workers still reload within the cache TTL.
        with contextlib.suppress(redis.RedisError):
            bump_version(client, namespace, tenant_id)

    return invalidate
