"""Job search on the ops ``GET /jobs``: by entity id, actor, state, error text and time.

Served from the indexes the job-status store keeps (see
:meth:`shared.jobstatus.JobStatusStore.search`), never a scan of every record: one
index is read newest first and at most 2000 of its entries are checked per request
(a page may come back short, with a cursor to go on). Error text matches failed jobs
only (the failed records a queue keeps, 1000 per tenant by default).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.http import Param, bad_parameter
from shared.jobstatus import JobStatusStore, without_tenant_data
from shared.queues import QUEUE_NAMES

SEARCH_PARAMS = (
    Param("entity_id", description="Jobs about this entity (its id)."),
    Param("actor", description="Jobs of this actor (e.g. run_execution)."),
    Param(
        "q",
        description="Failed jobs whose error ('<type>: <message>') contains this text "
        "(case-insensitive; it needs a word of 3 or more letters or digits).",
    ),
    Param("since", description="Jobs created at or after this time (ISO 8601 with a zone)."),
    Param("until", description="Jobs created before this time (ISO 8601 with a zone)."),
)
_NAMES = tuple(p.name for p in SEARCH_PARAMS)


def _time(req: Any, name: str) -> int | None:
    value = req.get_param(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_parameter(name, f"'{name}' is not an ISO 8601 time.") from None
    if moment.tzinfo is None:
        raise bad_parameter(name, f"'{name}' needs a time zone, e.g. 2026-01-31T12:00:00Z.")
    return int(moment.timestamp() * 1000)


def search_filters(req: Any) -> dict[str, Any] | None:
    """The search filters of a request (None: it asks for no search)."""
    if not any(req.get_param(name) for name in _NAMES):
        return None
    filters: dict[str, Any] = {}
    for name in ("entity_id", "actor", "q"):
        value = req.get_param(name) or None
        if value is not None and len(value) > 200:
            raise bad_parameter(name, f"'{name}' is at most 200 characters.")
        filters[name] = value
    filters["since_ms"] = _time(req, "since")
    filters["until_ms"] = _time(req, "until")
    return filters


def search_jobs(
    store: JobStatusStore,
    filters: dict[str, Any],
    *,
    queue: str | None,
    state: str | None,
    tenant: str | None,
    scope: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of matching jobs; ``scope`` is the tenant the caller may see (None:
    every tenant, records without tenant data)."""
    if scope is not None:
        if tenant is not None and tenant != scope:
            return [], None
        tenant = scope
    items, next_cursor = store.search(
        queues=[queue] if queue else QUEUE_NAMES,
        tenant=tenant,
        states=[state] if state else None,
        limit=limit,
        cursor=cursor,
        **filters,
    )
    if scope is None:
        items = [without_tenant_data(item) for item in items]
    return items, next_cursor
