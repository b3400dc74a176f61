"""Builds the engine a process needs from its settings, database and broker."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import peewee
import redis

from workflow_service.apiclient import ApiClient
from workflow_service.cache import ActiveWorkflowCache, bump_version
from workflow_service.engine import Engine
from workflow_service.settings import WorkflowSettings
from workflow_service.steps import Directory


def make_directory() -> Directory:
    """The user directory that expands roles into users (none configured: roles stay)."""
    from workflow_service.users.directory import UserDirectory

    return UserDirectory()


def make_event_hooks(broker: Any = None) -> list:
    """What every event runs through before dispatch: approvals close on an entity's
    deletion, archiving or change (see ``approvals.entity_events``); the executions
    they stop are reported to job status through ``broker``."""
    from workflow_service.approvals.entity_events import on_event

    return [functools.partial(on_event, broker=broker)]


def build_engine(
    settings: WorkflowSettings,
    db: peewee.Database | peewee.DatabaseProxy,
    broker: Any,
    client: redis.Redis,
    api: ApiClient | None = None,
) -> Engine:
    return Engine(
        settings=settings,
        db=db,
        broker=broker,
        api=api
        or ApiClient(
            settings.api_url, settings.service_token_secret, timeout=settings.api_timeout_s
        ),
        cache=ActiveWorkflowCache(client, settings.namespace, settings.workflow_cache_ttl_s),
        directory=make_directory(),
        event_hooks=make_event_hooks(broker),
    )


def cache_invalidator(client: redis.Redis, namespace: str):
    def invalidate(tenant_id: str) -> None:
        # If Redis is down, workers still reload within the cache TTL.
        with contextlib.suppress(redis.RedisError):
            bump_version(client, namespace, tenant_id)

    return invalidate
