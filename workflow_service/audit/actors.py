"""Actors on governance.audit: ``append_audit`` (move a tenant's pending rows into its
chain) and ``build_audit_package`` (a period's package as a stored file).

Both are safe to run twice: appending skips sources already chained, and a package
is stored under its job id, so a retry replaces the file it may have written.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

import dramatiq
from dramatiq.middleware import CurrentMessage

from shared.broker import actor_options
from workflow_service import broker as worker_broker
from workflow_service.apiclient import ApiClient
from workflow_service.audit import chain
from workflow_service.audit.kick import (
    APPEND_ACTOR,
    AUDIT_QUEUE,
    PACKAGE_ACTOR,
    WorkerKick,
    kick_key,
)
from workflow_service.audit.package import run_package, store_package

log = logging.getLogger(__name__)
OPTIONS = actor_options(AUDIT_QUEUE)
_api: ApiClient | None = None
_api_lock = threading.Lock()


class InvalidAuditMessage(ValueError):
    pass


def _client() -> ApiClient:
    global _api
    with _api_lock:
        if _api is None:
            settings = worker_broker.settings
            _api = ApiClient(
                settings.api_url, settings.service_token_secret, timeout=settings.api_timeout_s
            )
        return _api


def append_audit(tenant_id: str) -> None:
    """Chain the tenant's pending audit rows.

    Returns nothing: the count is logged, not stored (no result backend entry for a job
    the sweep sends every few seconds)."""
    if not isinstance(tenant_id, str) or not tenant_id:
        raise InvalidAuditMessage("an append_audit message takes one argument, a tenant id")
    # Cleared first: a write committed from now on sends a new builder (see .kick).
    worker_broker.broker.client.delete(kick_key(worker_broker.settings.namespace, tenant_id))
    appended = chain.append(worker_broker.database_proxy, tenant_id)
    if appended:
        log.info("audit: %d entries chained for tenant %s", appended, tenant_id)


def build_audit_package(tenant_id: str, start: str, until: str, requested_by: str) -> dict:
    """The period's audit package as a stored file; returns its descriptor."""
    message = CurrentMessage.get_current_message()
    job_id = message.message_id if message else f"local-{tenant_id}-{start}-{until}"
    try:
        datetime.fromisoformat(start), datetime.fromisoformat(until)
    except (TypeError, ValueError):
        raise InvalidAuditMessage("a package message takes ISO times from and until") from None
    sink = store_package(tenant_id, requested_by, job_id, worker_broker.settings)
    return run_package(tenant_id, start, until, requested_by, job_id, _client(), sink)


dramatiq.actor(actor_name=APPEND_ACTOR, throws=(InvalidAuditMessage,), **OPTIONS)(append_audit)
dramatiq.actor(
    actor_name=PACKAGE_ACTOR,
    throws=(InvalidAuditMessage,),
    store_results=True,
    **OPTIONS,
)(build_audit_package)
# Every worker kicks the chain builder after a message that recorded audit rows.
worker_broker.broker.add_middleware(
    WorkerKick(worker_broker.broker.client, worker_broker.settings.namespace)
)
