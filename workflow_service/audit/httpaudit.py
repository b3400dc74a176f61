"""Operators' and tenant admins' job and queue controls, recorded as they are answered.

The controls of :mod:`workflow_service.ops` change Redis, not this database, so there is
no transaction to join: the entry is written when the control has succeeded (a 2xx
answer), by this middleware, in one place for every control. The entry goes to the
caller's tenant chain.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from shared.auth import principal_of
from workflow_service.audit.record import record

log = logging.getLogger(__name__)

#: Resource class -> (method -> (action, entity type, path parameter naming the entity)).
CONTROLS: dict[str, dict[str, tuple[str, str, str | None]]] = {
    "OpsJobRetry": {"POST": ("job.retried", "job", "job_id")},
    "OpsJobItem": {"DELETE": ("job.deleted", "job", "job_id")},
    "OpsJobPromote": {"POST": ("job.promoted", "job", "job_id")},
    "OpsJobRetryFailed": {"POST": ("jobs.retried", "jobs", None)},
    "OpsJobClean": {"POST": ("jobs.cleaned", "jobs", None)},
}


def _control(resource: Any, method: str) -> tuple[str, str, str | None] | None:
    name = type(resource).__name__
    if name == "QueuePause" and method == "POST":
        paused = bool(getattr(resource, "paused", getattr(resource, "pause", True)))
        return ("queue.paused" if paused else "queue.resumed", "queue", "name")
    return CONTROLS.get(name, {}).get(method)


class OpsAudit:
    """Falcon middleware recording successful job and queue controls."""

    def process_resource(self, req, resp, resource, params):
        req.context.audit_params = dict(params or {})

    def process_response(self, req, resp, resource, req_succeeded):
        if not req_succeeded or resource is None or not str(resp.status).startswith("2"):
            return
        control = _control(resource, req.method)
        if control is None:
            return
        action, entity_type, param = control
        try:
            principal = principal_of(req)
            params = getattr(req.context, "audit_params", {})
            media = resp.media if isinstance(resp.media, dict) else {}
            digest = {
                "path": req.path,
                "query": dict(req.params),
                "answer": {k: v for k, v in media.items() if not isinstance(v, list | dict)},
                "roles": sorted(principal.roles),
            }
            if isinstance(media.get("jobs"), list):
                digest["jobs"] = media["jobs"][:100]
            record(
                principal.tenant,
                f"http:{uuid.uuid4()}",
                action,
                actor=principal.sub,
                entity_type=entity_type,
                entity_id=params.get(param, "") if param else "",
                digest=digest,
            )
        except Exception:  # noqa: BLE001 - the control is done; say so loudly
            log.exception("could not record %s on %s in the audit log", action, req.path)
