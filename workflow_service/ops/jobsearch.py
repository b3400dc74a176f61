"""Job search on the ops ``GET /jobs``: by entity id, actor, state, error text and time.

Served from the indexes the job-status store keeps (see
:meth:`shared.jobstatus.JobStatusStore.search`), never a scan of every record: one
index is read newest first and at most 2000 of its entries are checked per request
(a page may come back short, with a cursor to go on). Error text matches failed jobs
only (the failed records a queue keeps, 1000 per tenant by default).
"""

from __future__ import annotations

from typing import Any

from shared.jobstatus import JobStatusStore, without_tenant_data
from shared.jobstatus.params import SEARCH_PARAMS, search_filters
from shared.queues import QUEUE_NAMES

__all__ = ["SEARCH_PARAMS", "search_filters", "search_jobs"]


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
