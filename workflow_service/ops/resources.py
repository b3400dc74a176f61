"""Operations HTTP resources: ``/queues`` and the ops view of ``/jobs``.

Queues are shared by every tenant. The ``operator`` role (platform staff) sees and acts
on every tenant's jobs and on the queues' depths; a tenant's ``admin`` sees, retries and
drops only its own tenant's jobs, and its ``/queues`` counts only its own job records.
Another tenant's job is a 404 to an admin, like an unknown one. Every other role is a
403 (a tenant's users follow their own jobs on the api's ``/jobs``).
"""

from __future__ import annotations

import falcon
import redis
from pydantic import BaseModel

from shared.auth import principal_of
from shared.http import (
    ApiError,
    Operation,
    Param,
    bad_parameter,
    parse_choice,
    parse_limit,
    parse_uuid,
)
from shared.jobstatus import STATES, InvalidCursor, JobDetailOut, JobPageOut
from shared.jobstatus.params import TREE_STATE_PARAM, parse_tree_state
from shared.queues import QUEUE_NAMES
from workflow_service.ops.service import JobNotDead, JobNotFound, JobOps


class QueueOut(BaseModel):
    """One queue. Figures counted across tenants (``ready``, ``delayed``,
    ``in_flight``, ``dead``, ``processed``, ``failed``, ``retried``, ``workers``) are
    null for a tenant's admin; the kept-record counts are then its tenant's own."""

    name: str
    carries: str
    attempts: int
    backoff: str
    delay_ms: int
    ready: int | None
    delayed: int | None
    in_flight: int | None
    dead: int | None
    queued: int
    running: int
    retrying: int
    succeeded_kept: int
    failed_kept: int
    keep_succeeded: int
    keep_failed: int
    processed: int | None
    failed: int | None
    retried: int | None
    workers: list[str] | None


class QueuesOut(BaseModel):
    #: The tenant these figures are for; null: every tenant (an operator's view).
    tenant: str | None
    items: list[QueueOut]


class OpsJobOut(JobDetailOut):
    #: The message is in its queue's dead-letter set (so it can be retried).
    dead_lettered: bool


class RetryOut(BaseModel):
    id: str
    href: str
    retry_of: str
    enqueued_at: str | None


#: Who may use the operations routes: operators for every tenant, admins for their own.
OPS_ROLES = ("operator", "admin")


def ops_scope(req) -> str | None:
    """The tenant whose jobs the caller may see and act on; ``None``: every tenant.

    Checks role names themselves, not ``Principal.has_role``: that treats ``admin`` as
    holding every role, and an admin must not pass for an operator.
    """
    principal = principal_of(req)
    if "operator" in principal.roles:
        return None
    if "admin" in principal.roles:
        return principal.tenant
    raise falcon.HTTPForbidden(
        title="Forbidden",
        description="This action needs one of the roles: operator (every tenant's jobs), "
        "admin (its own tenant's jobs).",
    )


def _not_found(job_id: str, scope: str | None) -> falcon.HTTPNotFound:
    where = "" if scope is None else " for your tenant"
    return falcon.HTTPNotFound(
        title="Job not found", description=f"There is no job {job_id}{where}."
    )


def _not_dead(exc: JobNotDead, action: str) -> ApiError:
    return ApiError(
        falcon.HTTP_409,
        "Dead letter expired" if exc.expired else "Job is not dead",
        f"Job {exc.job_id} cannot be {action}: {exc.reason}.",
    )


def _redis_down(exc: redis.RedisError) -> ApiError:
    return ApiError(falcon.HTTP_503, "Redis unavailable", f"The queue store did not answer: {exc}.")


class QueueCollection:
    docs = {
        "GET": Operation(
            summary="Every queue: ready, delayed, in flight, dead, kept records, workers "
            "(an admin: its tenant's kept records only)",
            response=QueuesOut,
            roles=OPS_ROLES,
            errors=(503,),
        )
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_get(self, req, resp):
        scope = ops_scope(req)
        try:
            resp.media = {"tenant": scope, "items": self.ops.queues(scope)}
        except redis.RedisError as exc:
            raise _redis_down(exc) from None


class OpsJobCollection:
    docs = {
        "GET": Operation(
            summary="Jobs of every tenant (an admin: its own tenant's), newest first",
            response=JobPageOut,
            roles=OPS_ROLES,
            params=(
                Param("queue", schema={"enum": list(QUEUE_NAMES)}),
                Param("state", schema={"enum": list(STATES)}),
                TREE_STATE_PARAM,
                Param(
                    "tenant",
                    description="Only this tenant's jobs (an admin naming another tenant "
                    "gets none).",
                ),
                Param("limit", schema={"type": "integer"}, description="1-200, default 50"),
                Param("cursor", description="next_cursor of the previous page."),
            ),
            errors=(400,),
        )
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_get(self, req, resp):
        scope = ops_scope(req)
        queue = parse_choice(req, "queue", QUEUE_NAMES)
        state = parse_choice(req, "state", STATES)
        tree_state = parse_tree_state(req, state)
        tenant = req.get_param("tenant") or None
        if tenant is not None and len(tenant) > 64:
            raise bad_parameter("tenant", "'tenant' is at most 64 characters.")
        limit = parse_limit(req)
        try:
            items, next_cursor = self.ops.list_jobs(
                queue=queue,
                state=state,
                tenant=tenant,
                limit=limit,
                cursor=req.get_param("cursor") or None,
                scope=scope,
                tree_state=tree_state,
            )
        except InvalidCursor:
            raise bad_parameter(
                "cursor", "'cursor' is not a cursor returned by this API."
            ) from None
        resp.media = {"items": items, "next_cursor": next_cursor}


class OpsJobItem:
    docs = {
        "GET": Operation(
            summary="A job's record, timeline and children (an admin: its tenant's jobs)",
            response=OpsJobOut,
            roles=OPS_ROLES,
            errors=(400, 404),
        ),
        "DELETE": Operation(
            summary="Drop a failed job: its dead letter and its record",
            status=204,
            roles=OPS_ROLES,
            errors=(400, 404, 409),
        ),
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_get(self, req, resp, job_id):
        scope = ops_scope(req)
        job_id = str(parse_uuid(job_id, "job_id"))
        try:
            resp.media = self.ops.job(job_id, scope)
        except JobNotFound:
            raise _not_found(job_id, scope) from None

    def on_delete(self, req, resp, job_id):
        scope = ops_scope(req)
        job_id = str(parse_uuid(job_id, "job_id"))
        try:
            self.ops.delete(job_id, scope)
        except JobNotFound:
            raise _not_found(job_id, scope) from None
        except JobNotDead as exc:
            raise _not_dead(exc, "dropped") from None
        resp.status = falcon.HTTP_204


class OpsJobRetry:
    docs = {
        "POST": Operation(
            summary="Send a dead job again as a new job with a fresh attempt count",
            response=RetryOut,
            status=202,
            roles=OPS_ROLES,
            errors=(400, 404, 409, 503),
        )
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_post(self, req, resp, job_id):
        scope = ops_scope(req)
        job_id = str(parse_uuid(job_id, "job_id"))
        try:
            resp.media = self.ops.retry(job_id, scope)
        except JobNotFound:
            raise _not_found(job_id, scope) from None
        except JobNotDead as exc:
            raise _not_dead(exc, "retried") from None
        except redis.RedisError as exc:
            raise _redis_down(exc) from None
        resp.status = falcon.HTTP_202
        resp.location = resp.media["href"]


def add_ops_routes(app: falcon.App, docs, ops: JobOps) -> None:
    """``/queues``, ``/jobs``, ``/jobs/{id}`` and ``/jobs/{id}/retry`` (operators, and
    admins for their own tenant)."""
    docs.add_route(app, "/queues", QueueCollection(ops))
    docs.add_route(app, "/jobs", OpsJobCollection(ops))
    docs.add_route(app, "/jobs/{job_id}", OpsJobItem(ops))
    docs.add_route(app, "/jobs/{job_id}/retry", OpsJobRetry(ops))
