"""Each worker's cache of active workflows, invalidated through Redis.

Dispatch needs the active workflows of (tenant, entity type, trigger) for every event.
The cache answers from memory; before using an entry it reads the tenant's workflow
version counter from Redis (one GET), which every workflow change increments after its
commit. A changed counter or an entry older than the TTL reloads through the
(tenant, entity_type, trigger, status) index. If Redis cannot be read the cache
reloads from the database rather than trusting a possibly stale entry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from workflow_service.models import Workflow, WorkflowStatus


def version_key(namespace: str, tenant_id: str) -> str:
    return f"{namespace}:workflows:version:{tenant_id}"


def global_version_key(namespace: str) -> str:
    """Moves with every tenant's version (the scheduler watches all tenants at once)."""
    return f"{namespace}:workflows:version"


def bump_version(client: redis.Redis, namespace: str, tenant_id: str) -> None:
    """Tell every worker that the tenant's workflows changed (call after commit)."""
    pipe = client.pipeline(transaction=False)
    pipe.incr(version_key(namespace, tenant_id))
    pipe.incr(global_version_key(namespace))
    pipe.execute()


@dataclass(frozen=True)
class ActiveWorkflow:
    id: str
    name: str
    version: int
    conditions: tuple[dict[str, Any], ...]


@dataclass
class _Entry:
    token: bytes | None
    loaded_at: float
    workflows: list[ActiveWorkflow]


class ActiveWorkflowCache:
    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.namespace = namespace
        self.ttl_s = ttl_s
        self.clock = clock
        self.loads = 0  # how many times the database was asked (tests, metrics)
        self._entries: dict[tuple[str, str, str], _Entry] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str, entity_type: str, trigger: str) -> list[ActiveWorkflow]:
        try:
            token = self.client.get(version_key(self.namespace, tenant_id)) or b"0"
        except redis.RedisError:
            token = None
        key = (tenant_id, entity_type, trigger)
        entry = self._entries.get(key)
        now = self.clock()
        if (
            entry is not None
            and token is not None
            and entry.token == token
            and now - entry.loaded_at < self.ttl_s
        ):
            return entry.workflows
        workflows = self._load(tenant_id, entity_type, trigger)
        with self._lock:
            self._entries[key] = _Entry(token, now, workflows)
        return workflows

    def _load(self, tenant_id: str, entity_type: str, trigger: str) -> list[ActiveWorkflow]:
        self.loads += 1
        query = (
            Workflow.select(Workflow.id, Workflow.name, Workflow.version, Workflow.conditions)
            .where(
                (Workflow.tenant_id == tenant_id)
                & (Workflow.entity_type == entity_type)
                & (Workflow.trigger == trigger)
                & (Workflow.status == WorkflowStatus.ACTIVE)
            )
            .order_by(Workflow.created_at, Workflow.id)
        )
        return [
            ActiveWorkflow(row.id, row.name, row.version, tuple(row.conditions or ()))
            for row in query
        ]
