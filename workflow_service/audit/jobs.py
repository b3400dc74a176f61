"""The scheduler's audit sweep: send the chain builder for pending rows nobody kicked
(a lost message, Redis down at the time, writes from processes without a kick)."""

from __future__ import annotations

import logging
from datetime import timedelta

from shared.db import utcnow
from workflow_service.audit import chain
from workflow_service.audit.kick import kick
from workflow_service.db import database

log = logging.getLogger(__name__)

#: How often the leader looks for pending rows, and how old they must be (younger ones
#: have a kick on its way).
SWEEP_INTERVAL_S = 10.0
SWEEP_AFTER_S = 5.0


def sweep(broker, client, namespace: str) -> int:
    with database.connection_context():
        tenants = chain.pending_tenants(utcnow() - timedelta(seconds=SWEEP_AFTER_S))
    return kick(broker, client, namespace, tenants)


def audit_sweep(scheduler, context) -> None:
    """Scheduler registrar: the audit sweep, on the leader only."""
    broker = context.engine.broker
    namespace = context.settings.namespace

    def run() -> None:
        if not context.is_leader():
            return
        sent = sweep(broker, getattr(broker, "client", None), namespace)
        if sent:
            log.info("audit sweep: chain builders sent for %d tenants", sent)

    scheduler.add_job(run, "interval", seconds=SWEEP_INTERVAL_S, id="audit-sweep")
