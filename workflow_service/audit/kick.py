"""Sending the chain builder once the writes it should chain have committed.

:func:`record` only notes which tenants a thread wrote pending rows for; when the
request (:class:`WebKick`) or message (:class:`WorkerKick`) is over - its transactions
committed or rolled back - one ``append_audit`` message per tenant goes out. A Redis
key per tenant (``SET NX``, cleared by the builder as it starts) keeps a burst of
writes to one message; anything a lost message leaves behind, the scheduler's sweep
sends (:mod:`.jobs`).

A worker sends that ``SET NX`` at most once per tenant per :data:`WORKER_KICK_EVERY_S`
(:class:`WorkerKick`): a busy worker records audit rows after nearly every message, and
one round trip per message bought nothing while a builder was queued anyway. A message
that records rows within that interval of the tenant's last kick is owed one, sent by a
timer when the interval ends, so rows committed after a builder started (and cleared the
key) still wake a builder within the interval rather than at the sweep.
"""

from __future__ import annotations

import logging
import threading
import time
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
#: A worker process kicks a tenant at most once per this many seconds (see WorkerKick).
WORKER_KICK_EVERY_S = 0.25


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
    """Dramatiq middleware: kick after each message that recorded audit rows, at most
    once per tenant per :data:`WORKER_KICK_EVERY_S` in this process.

    A tenant kicked less than the interval ago is owed a kick instead; one timer per
    process sends what is owed when the earliest interval ends. Shutting down with a
    kick owed leaves those rows to the sweep, like a lost message.
    """

    def __init__(self, client: Any, namespace: str, *, every_s: float = WORKER_KICK_EVERY_S):
        self.client = client
        self.namespace = namespace
        self.every_s = every_s
        self._lock = threading.Lock()
        #: tenant -> monotonic time of its last kick from this process
        self._kicked: dict[str, float] = {}
        self._owed: set[str] = set()
        self._timer: threading.Timer | None = None

    def after_process_message(self, broker, message, *, result=None, exception=None):
        tenants = take_touched()
        if tenants:
            self._kick(broker, tenants)

    def after_skip_message(self, broker, message):
        take_touched()

    def _kick(self, broker: Any, tenants: Iterable[str]) -> None:
        now = time.monotonic()
        due: list[str] = []
        with self._lock:
            for tenant_id in tenants:
                last = self._kicked.get(tenant_id)
                if last is not None and now - last < self.every_s:
                    self._owed.add(tenant_id)
                    if self._timer is None:
                        self._timer = threading.Timer(
                            last + self.every_s - now, self._send_owed, args=(broker,)
                        )
                        self._timer.daemon = True
                        self._timer.start()
                    continue
                self._kicked[tenant_id] = now
                due.append(tenant_id)
            if len(self._kicked) > 1000:  # forget tenants not kicked for a while
                self._kicked = {t: at for t, at in self._kicked.items() if now - at < self.every_s}
        if due:
            kick(broker, self.client, self.namespace, due)

    def _send_owed(self, broker: Any) -> None:
        with self._lock:
            self._timer = None
            owed, self._owed = self._owed, set()
        if owed:
            # Those kicked again meanwhile are owed again (a new timer), the rest go now.
            self._kick(broker, owed)


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
