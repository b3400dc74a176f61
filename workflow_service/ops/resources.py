"""Admin-only HTTP resources: ``/queues`` and the ops view of ``/jobs``.

Queues are shared by every tenant, so these views span tenants; that is why they need
the admin role (a tenant's users follow their own jobs on the api's ``/jobs``).
"""

from __future__ import annotations

import falcon
import redis
from pydantic import BaseModel

from shared.auth import require_role
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
from shared.queues import QUEUE_NAMES
from workflow_service.ops.service import JobNotDead, JobNotFound, JobOps


class QueueOut(BaseModel):
    name: str
    carries: str
    attempts: int
    backoff: str
    delay_ms: int
    ready: int
    delayed: int
    in_flight: int
    dead: int
    running: int
    retrying: int
    succeeded_kept: int
    failed_kept: int
    keep_succeeded: int
    keep_failed: int
    processed: int
    failed: int
    retried: int
    workers: list[str]


class QueuesOut(BaseModel):
    items: list[QueueOut]


class OpsJobOut(JobDetailOut):
    #: The message is in its queue's dead-letter set (so it can be retried).
    dead_lettered: bool


class RetryOut(BaseModel):
    id: str
    href: str
    retry_of: str
    enqueued_at: str | None


ADMIN = ("admin",)


def _not_found(job_id: str) -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(title="Job not found", description=f"There is no job {job_id}.")


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
            summary="Every queue: ready, delayed, in flight, dead, kept records, workers",
            response=QueuesOut,
            roles=ADMIN,
            errors=(503,),
        )
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_get(self, req, resp):
        require_role(req, "admin")
        try:
            resp.media = {"items": self.ops.queues()}
        except redis.RedisError as exc:
            raise _redis_down(exc) from None


class OpsJobCollection:
    docs = {
        "GET": Operation(
            summary="Jobs of every tenant, newest first",
            response=JobPageOut,
            roles=ADMIN,
            params=(
                Param("queue", schema={"enum": list(QUEUE_NAMES)}),
                Param("state", schema={"enum": list(STATES)}),
                Param("tenant", description="Only this tenant's jobs."),
                Param("limit", schema={"type": "integer"}, description="1-200, default 50"),
                Param("cursor", description="next_cursor of the previous page."),
            ),
            errors=(400,),
        )
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_get(self, req, resp):
        require_role(req, "admin")
        queue = parse_choice(req, "queue", QUEUE_NAMES)
        state = parse_choice(req, "state", STATES)
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
            )
        except InvalidCursor:
            raise bad_parameter(
                "cursor", "'cursor' is not a cursor returned by this API."
            ) from None
        resp.media = {"items": items, "next_cursor": next_cursor}


class OpsJobItem:
    docs = {
        "GET": Operation(
            summary="A job's record, timeline and children (any tenant)",
            response=OpsJobOut,
            roles=ADMIN,
            errors=(400, 404),
        ),
        "DELETE": Operation(
            summary="Drop a failed job: its dead letter and its record",
            status=204,
            roles=ADMIN,
            errors=(400, 404, 409),
        ),
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_get(self, req, resp, job_id):
        require_role(req, "admin")
        job_id = str(parse_uuid(job_id, "job_id"))
        try:
            resp.media = self.ops.job(job_id)
        except JobNotFound:
            raise _not_found(job_id) from None

    def on_delete(self, req, resp, job_id):
        require_role(req, "admin")
        job_id = str(parse_uuid(job_id, "job_id"))
        try:
            self.ops.delete(job_id)
        except JobNotFound:
            raise _not_found(job_id) from None
        except JobNotDead as exc:
            raise _not_dead(exc, "dropped") from None
        resp.status = falcon.HTTP_204


class OpsJobRetry:
    docs = {
        "POST": Operation(
            summary="Send a dead job again as a new job with a fresh attempt count",
            response=RetryOut,
            status=202,
            roles=ADMIN,
            errors=(400, 404, 409, 503),
        )
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_post(self, req, resp, job_id):
        require_role(req, "admin")
        job_id = str(parse_uuid(job_id, "job_id"))
        try:
            resp.media = self.ops.retry(job_id)
        except JobNotFound:
            raise _not_found(job_id) from None
        except JobNotDead as exc:
            raise _not_dead(exc, "retried") from None
        except redis.RedisError as exc:
            raise _redis_down(exc) from None
        resp.status = falcon.HTTP_202
        resp.location = resp.media["href"]


def add_ops_routes(app: falcon.App, docs, ops: JobOps) -> None:
    """``/queues``, ``/jobs``, ``/jobs/{id}`` and ``/jobs/{id}/retry`` (admin only)."""
    docs.add_route(app, "/queues", QueueCollection(ops))
    docs.add_route(app, "/jobs", OpsJobCollection(ops))
    docs.add_route(app, "/jobs/{job_id}", OpsJobItem(ops))
    docs.add_route(app, "/jobs/{job_id}/retry", OpsJobRetry(ops))
