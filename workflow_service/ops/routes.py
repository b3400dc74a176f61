"""Wires the operations views and the console into the admin web."""

from __future__ import annotations

from typing import Any

import falcon

from shared.jobstatus import JobStatusStore
from workflow_service.console import add_console_routes
from workflow_service.ops.broker_state import BrokerState
from workflow_service.ops.insight import add_insight_routes
from workflow_service.ops.metrics import QueueCollector
from workflow_service.ops.reopen import reopen_for_retry
from workflow_service.ops.resources import add_ops_routes
from workflow_service.ops.service import JobOps


def register_ops(app: falcon.App, docs: Any, context: Any) -> None:
    """Route registrar of the admin web: ``/queues``, ``/jobs``, ``/console``,
    ``/stats``, ``/workers``, ``/schedules``, and the queue series on ``/metrics``.
    ``context`` carries ``settings`` and ``deps`` (``redis``, ``broker``, ``registry``)."""
    settings, deps = context.settings, context.deps
    store = JobStatusStore(
        deps.redis,
        settings.namespace,
        keep_succeeded=settings.keep_succeeded,
        keep_failed=settings.keep_failed,
        min_age_s=settings.job_min_age_s,
        max_records=settings.job_max_records,
    )
    state = BrokerState(deps.redis, settings.namespace)
    ops = JobOps(store, deps.broker, state, before_retry=reopen_for_retry)
    add_ops_routes(app, docs, ops)
    add_console_routes(app, docs)
    add_insight_routes(app, docs, context)
    deps.registry.register(QueueCollector(store, state))
