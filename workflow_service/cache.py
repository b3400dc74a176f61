"""Each worker's cache of active workflows, invalidated through Redis.

Dispatch needs the active workflows of (tenant, entity type, trigger) for every event.
The cache answers from memory; before using an entry it reads the tenant's workflow
version counter from Redis (one GET), which every workflow change increments after its
commit. A changed counter or an entry older than the TTL reloads through the
(tenant, entity_type, trigger, status) index. If Redis cannot be read the cache
reloads from the database rather than trusting a possibly stale entry.

An entry holds its workflows compiled and indexed (:class:`WorkflowIndex`), so matching
an event costs about the same at ten thousand workflows as at ten. A stale entry is
reloaded by one thread at a time: the others of the process that need it meanwhile
wait for that load and use it if it is fresh for them, rather than each running the
same query (which, after a workflow change, made every thread's first dispatch as slow
as all of their loads together).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from workflow_service.matching import WorkflowIndex
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
    index: WorkflowIndex[ActiveWorkflow]

    @property
    def workflows(self) -> list[ActiveWorkflow]:
        return self.index.workflows


class _Flight:
    """One reload of an entry in progress; the threads that need it wait on ``done``."""

    def __init__(self, number: int):
        self.number = number
        self.done = threading.Event()
        self.entry: _Entry | None = None


class ActiveWorkflowCache:
    """The active workflows of (tenant, entity type, trigger), indexed for matching."""

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
        self._flights: dict[tuple[str, str, str], _Flight] = {}
        self._flights_started = 0
        self._lock = threading.Lock()

    def get(self, tenant_id: str, entity_type: str, trigger: str) -> list[ActiveWorkflow]:
        """The active workflows, oldest first (created_at, id)."""
        return self._entry(tenant_id, entity_type, trigger).workflows

    def match(
        self,
        tenant_id: str,
        entity_type: str,
        trigger: str,
        data: dict[str, Any],
        envelope: dict[str, Any] | None = None,
    ) -> list[ActiveWorkflow]:
        """The active workflows whose conditions hold for an event's data, oldest first."""
        return self._entry(tenant_id, entity_type, trigger).index.match(data, envelope)

    def _fresh(self, entry: _Entry, token: bytes | None, now: float) -> bool:
        return token is not None and entry.token == token and now - entry.loaded_at < self.ttl_s

    def _entry(self, tenant_id: str, entity_type: str, trigger: str) -> _Entry:
        try:
            token = self.client.get(version_key(self.namespace, tenant_id)) or b"0"
        except redis.RedisError:
            token = None
        key = (tenant_id, entity_type, trigger)
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and self._fresh(entry, token, now):
            return entry
        arrived: int | None = None  # the last load started when this thread came
        while True:
            mine: _Flight | None = None
            try:
                with self._lock:
                    entry = self._entries.get(key)
                    if entry is not None and self._fresh(entry, token, now):
                        return entry
                    if arrived is None:
                        arrived = self._flights_started
                    flight = self._flights.get(key)
                    if flight is None:
                        self._flights_started += 1
                        flight = mine = _Flight(self._flights_started)
                        self._flights[key] = flight
                if mine is not None:
                    entry = _Entry(token, now, WorkflowIndex(self._load(*key)))
                    with self._lock:
                        self._entries[key] = entry
                    mine.entry = entry
                    return entry
            finally:
                # Whatever ends this thread's load (an error, a time limit raised in
                # the thread), the threads waiting for it must wake and not wait again.
                if mine is not None:
                    with self._lock:
                        if self._flights.get(key) is mine:
                            del self._flights[key]
                    mine.done.set()
            flight.done.wait()
            # A load that began after this thread came read the database later than
            # it asked (the only way to be fresh when Redis cannot say); one that began
            # before is used only if it saw the same version. Otherwise (or if the load
            # failed) go round: wait for the next load, or make it.
            if flight.entry is not None and (
                (arrived is not None and flight.number > arrived)
                or self._fresh(flight.entry, token, now)
            ):
                return flight.entry

    def _load(self, tenant_id: str, entity_type: str, trigger: str) -> list[ActiveWorkflow]:
        with self._lock:
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
