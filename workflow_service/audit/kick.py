"""Sending the chain builder once the writes it should chain have committed.

:func:`record` only notes which tenants a thread wrote pending rows for; when the
request (:class:`WebKick`) or message (:class:`WorkerKick`) is over - its transactions
committed or rolled back - one ``append_audit`` message per tenant goes out. A Redis
key per tenant (``SET NX``, cleared by the builder as it starts) keeps a burst of
writes to one message; anything a lost message leaves behind, the scheduler's sweep
sends (:mod:`.jobs`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from workflow_service.audit.record import act_as, take_touched

log = logging.getLogger(__name__)

AUDIT_QUEUE = "governance.audit"
APPEND_ACTOR = "append_audit"
PACKAGE_ACTOR = "build_audit_package"
#: How long a kick key outlives a lost message (the sweep sends another meanwhile).
KICK_TTL_S = 60


def kick_key(namespace: str, tenant_id: str) -> str:
    return f"{namespace}:audit:kick:{tenant_id}"


def append_message(tenant_id: str) -> dramatiq.Message:
    # No tenant_id option: the builder is housekeeping, so its job records are the
    # operators' (a tenant's job list shows the work its people asked for).
    return dramatiq.Message(
        queue_name=AUDIT_QUEUE,
        actor_name=APPEND_ACTOR,
        args=(tenant_id,),
        kwargs={},
        options={},
    )


def kick(broker: Any, client: Any, namespace: str, tenants: Iterable[str]) -> int:
    """Send the chain builder for each tenant that has none waiting; never raises."""
    sent = 0
    for tenant_id in tenants:
        key = kick_key(namespace, tenant_id)
        try:
            if client is not None and not client.set(key, "1", nx=True, ex=KICK_TTL_S):
                continue  # a builder for this tenant is queued and has not started yet
            broker.enqueue(append_message(tenant_id))
            sent += 1
        except Exception as exc:  # noqa: BLE001 - the sweep sends it later
            log.warning("audit chain builder for %s not sent (%s); the sweep will", tenant_id, exc)
            try:
                if client is not None:
                    client.delete(key)
            except Exception:  # noqa: BLE001, S110 - the key expires by itself
                pass
    return sent


class WorkerKick(Middleware):
    """Dramatiq middleware: kick after each message that recorded audit rows."""

    def __init__(self, client: Any, namespace: str):
        self.client = client
        self.namespace = namespace

    def after_process_message(self, broker, message, *, result=None, exception=None):
        tenants = take_touched()
        if tenants:
            kick(broker, self.client, self.namespace, tenants)

    def after_skip_message(self, broker, message):
        take_touched()


class WebKick:
    """Falcon middleware: kick after each request that recorded audit rows."""

    def __init__(self, broker: Any, client: Any, namespace: str):
        self.broker = broker
        self.client = client
        self.namespace = namespace

    def process_request(self, req, resp):
        take_touched()  # nothing of an earlier request on this thread
        act_as(None)

    def process_resource(self, req, resp, resource, params):
        principal = getattr(req.context, "principal", None)
        act_as(principal.sub if principal is not None else None)

    def process_response(self, req, resp, resource, req_succeeded):
        act_as(None)
        tenants = take_touched()
        if tenants:
            kick(self.broker, self.client, self.namespace, tenants)
