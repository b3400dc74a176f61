"""``/jobs``: the status of the background jobs a caller's writes started.

Answers from the job-status records the workers write to Redis
(:mod:`shared.jobstatus`); the api never asks the workflow service. Reading them takes
a role that may read policies; records are scoped to the caller's tenant: another
tenant's job is a 404, exactly like an unknown one.
"""

from __future__ import annotations

import falcon

from api_service.resources import READ_ROLES
from shared.http import Param, bad_parameter, parse_choice, parse_limit, parse_uuid, route
from shared.jobstatus import (
    STATES,
    InvalidCursor,
    InvalidSearch,
    JobDetailOut,
    JobPageOut,
    JobStatusStore,
)
from shared.jobstatus.params import (
    SEARCH_PARAMS,
    TREE_STATE_PARAM,
    parse_tree_state,
    search_filters,
)
from shared.queues import QUEUE_NAMES

LIST_PARAMS = (
    Param("queue", description="Only jobs of this queue.", schema={"enum": list(QUEUE_NAMES)}),
    Param("state", description="Only jobs in this state.", schema={"enum": list(STATES)}),
    TREE_STATE_PARAM,
    Param("limit", description="Page size (1-200, default 50).", schema={"type": "integer"}),
    Param("cursor", description="next_cursor of the previous page."),
    *SEARCH_PARAMS,
)


def job_not_found(job_id: str) -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(
        title="Job not found",
        description=f"There is no job {job_id} for your tenant (records of finished jobs "
        "are kept for a limited number of jobs per queue).",
    )


class JobItem:
    docs = {
        "GET": route(
            summary="A job's status, timeline, progress and the jobs it started",
            response=JobDetailOut,
            errors=(400, 404),
            roles=READ_ROLES,
        )
    }

    def __init__(self, store: JobStatusStore):
        self.store = store

    def on_get(self, req, resp, job_id):
        principal = req.context.principal
        job_id = str(parse_uuid(job_id, "job_id"))
        record = self.store.get(job_id)
        if record is None or record["tenant_id"] != principal.tenant:
            raise job_not_found(job_id)
        return record


class JobCollection:
    docs = {
        "GET": route(
            summary="Your tenant's jobs, newest first (?tree_state=failed: writes whose work "
            "failed somewhere below; search by entity id, actor, error text and time)",
            response=JobPageOut,
            params=LIST_PARAMS,
            errors=(400,),
            roles=READ_ROLES,
        )
    }

    def __init__(self, store: JobStatusStore):
        self.store = store

    def on_get(self, req, resp):
        principal = req.context.principal
        queue = parse_choice(req, "queue", QUEUE_NAMES)
        state = parse_choice(req, "state", STATES)
        tree_state = parse_tree_state(req, state)
        limit = parse_limit(req)
        search = search_filters(req)
        if search is not None and tree_state is not None:
            raise bad_parameter("tree_state", "'tree_state' does not combine with a search.")
        try:
            if search is not None:
                # From the store's search indexes, the tenant's own (never a scan).
                items, next_cursor = self.store.search(
                    queues=[queue] if queue else QUEUE_NAMES,
                    tenant=principal.tenant,
                    states=[state] if state else None,
                    limit=limit,
                    cursor=req.get_param("cursor") or None,
                    **search,
                )
            else:
                items, next_cursor = self.store.list_jobs(
                    queues=[queue] if queue else QUEUE_NAMES,
                    states=[state] if state else STATES,
                    tenant=principal.tenant,
                    limit=limit,
                    cursor=req.get_param("cursor") or None,
                    tree_states=[tree_state] if tree_state else None,
                )
        except InvalidSearch as exc:
            raise bad_parameter("q", str(exc)) from None
        except InvalidCursor:
            raise bad_parameter(
                "cursor", "'cursor' is not a cursor returned by this API."
            ) from None
        return {"items": items, "next_cursor": next_cursor}


def add_job_routes(app: falcon.App, docs, store: JobStatusStore) -> None:
    """Register ``/jobs`` and ``/jobs/{job_id}`` (with ``docs``, an ApiDocs)."""
    docs.add_route(app, "/jobs", JobCollection(store))
    docs.add_route(app, "/jobs/{job_id}", JobItem(store))
