"""Operations HTTP resources: ``/queues`` and the ops view of ``/jobs``.

Queues are shared by every tenant. The ``operator`` role (platform staff) sees and acts
on every tenant's jobs and on the queues' depths; a tenant's ``admin`` sees, retries and
drops only its own tenant's jobs, and its ``/queues`` counts only its own job records.
Another tenant's job is a 404 to an admin, like an unknown one. Every other role is a
403 (a tenant's users follow their own jobs on the api's ``/jobs``).

Queue control: pausing and resuming a queue stops or starts it for every tenant, so it
is for operators only (an admin gets a 403). The bulk retry, clean and promote act on
the jobs the caller's scope covers, like the single-job actions.
"""

from __future__ import annotations

from datetime import datetime

import falcon
import redis
from pydantic import BaseModel, Field

from shared.auth import principal_of
from shared.http import (
    ApiError,
    Param,
    StrictModel,
    bad_parameter,
    parse_choice,
    parse_limit,
    parse_uuid,
    require_operator,
    route,
)
from shared.jobstatus import STATES, InvalidCursor, InvalidSearch, JobDetailOut, JobPageOut
from shared.jobstatus.params import TREE_STATE_PARAM, parse_tree_state
from shared.queues import QUEUE_NAMES
from workflow_service.ops.jobdetail import JobPageAdditions, add_detail
from workflow_service.ops.jobsearch import SEARCH_PARAMS, search_filters, search_jobs
from workflow_service.ops.service import (
    ConfirmationMismatch,
    FailedFilter,
    JobNotDead,
    JobNotDelayed,
    JobNotFound,
    JobOps,
)


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
    #: Workers take no new message from the queue (in-flight work finishes).
    paused: bool = False
    #: Who paused it (null for a tenant's admin) and when.
    paused_by: str | None = None
    paused_at: str | None = None


class QueuesOut(BaseModel):
    #: The tenant these figures are for; null: every tenant (an operator's view).
    tenant: str | None
    items: list[QueueOut]


class OpsJobOut(JobDetailOut, JobPageAdditions):
    #: The message is in its queue's dead-letter set (so it can be retried).
    dead_lettered: bool


class RetryOut(BaseModel):
    id: str
    href: str
    retry_of: str
    enqueued_at: str | None


class PauseOut(BaseModel):
    name: str
    paused: bool
    paused_by: str | None
    paused_at: str | None


class RetryFailedIn(StrictModel):
    """Which failed jobs to retry; every given field must match."""

    queue: str | None = None
    actor: str | None = Field(default=None, max_length=200)
    #: Case-insensitive part of "<error type>: <error message>".
    error: str | None = Field(default=None, max_length=500)
    #: Failed at or after this time.
    since: datetime | None = None
    #: Failed before this time.
    until: datetime | None = None
    #: Only count the matching jobs and answer a confirmation for this filter.
    dry_run: bool = False
    #: The confirmation a dry run answered for the same filter (required otherwise).
    confirmation: str | None = Field(default=None, max_length=64)


class RetryFailedOut(BaseModel):
    #: Dry run: how many failed jobs match (and can be retried).
    count: int | None = None
    confirmation: str | None = None
    expires_in_s: int | None = None
    #: Real run: how many were sent again, and how many another caller took meanwhile.
    retried: int | None = None
    skipped: int | None = None
    jobs: list[str] | None = None


class CleanIn(StrictModel):
    state: str = Field(description="Only 'failed'")
    #: Jobs that failed before this time.
    before: datetime


class CleanOut(BaseModel):
    #: Failed job records dropped, with their dead letters.
    records: int
    #: Operators: dead letters that old without a record (pruned by retention).
    dead_letters: int


class PromoteOut(BaseModel):
    id: str
    href: str
    promoted_at: str | None


#: Who may use the operations routes: operators for every tenant, admins for their own.
OPS_ROLES = ("operator", "admin")
#: Who may read them: auditors too, for their own tenant (they change nothing).
OPS_READ_ROLES = (*OPS_ROLES, "auditor")


def ops_scope(req, *, read: bool = False) -> str | None:
    """The tenant whose jobs the caller may see and act on; ``None``: every tenant.
    ``read``: the route only reads, so a tenant's auditor may call it too.

    Checks role names themselves, not ``Principal.has_role``: that treats ``admin`` as
    holding every role, and an admin must not pass for an operator.
    """
    principal = principal_of(req)
    if "operator" in principal.roles:
        return None
    if "admin" in principal.roles or (read and "auditor" in principal.roles):
        return principal.tenant
    readers = ", auditor (reading its own tenant's jobs)" if read else ""
    raise falcon.HTTPForbidden(
        title="Forbidden",
        description="This action needs one of the roles: operator (every tenant's jobs), "
        f"admin (its own tenant's jobs){readers}.",
    )


def ops_reader(req):
    """A declared route's check: ``ops_scope(read=True)``'s refusal, the principal."""
    ops_scope(req, read=True)
    return principal_of(req)


def ops_actor(req):
    """A declared route's check: ``ops_scope``'s refusal, the principal."""
    ops_scope(req)
    return principal_of(req)


def _queue_operator(req):
    return require_operator(req, "A queue is shared by every tenant")


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


def _ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ApiError(
            falcon.HTTP_422,
            "Invalid request body",
            "Times need a time zone, e.g. 2026-01-31T12:00:00Z.",
        )
    return int(value.timestamp() * 1000)


def _queue_name(name: str) -> str:
    if name not in QUEUE_NAMES:
        raise falcon.HTTPNotFound(
            title="Queue not found", description=f"There is no queue {name!r}."
        )
    return name


def _redis_down(exc: redis.RedisError) -> ApiError:
    return ApiError(falcon.HTTP_503, "Redis unavailable", f"The queue store did not answer: {exc}.")


class QueueCollection:
    docs = {
        "GET": route(
            summary="Every queue: ready, delayed, in flight, dead, kept records, workers "
            "(an admin: its tenant's kept records only)",
            response=QueuesOut,
            roles=OPS_READ_ROLES,
            authorize=ops_reader,
            errors=(503,),
        )
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_get(self, req, resp):
        scope = ops_scope(req, read=True)
        try:
            resp.media = {"tenant": scope, "items": self.ops.queues(scope)}
        except redis.RedisError as exc:
            raise _redis_down(exc) from None


class OpsJobCollection:
    docs = {
        "GET": route(
            summary="Jobs of every tenant (an admin: its own tenant's), newest first; "
            "search by entity id, actor, error text and time",
            response=JobPageOut,
            roles=OPS_READ_ROLES,
            authorize=ops_reader,
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
                *SEARCH_PARAMS,
            ),
            errors=(400,),
        )
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_get(self, req, resp):
        scope = ops_scope(req, read=True)
        queue = parse_choice(req, "queue", QUEUE_NAMES)
        state = parse_choice(req, "state", STATES)
        tree_state = parse_tree_state(req, state)
        tenant = req.get_param("tenant") or None
        if tenant is not None and len(tenant) > 64:
            raise bad_parameter("tenant", "'tenant' is at most 64 characters.")
        limit = parse_limit(req)
        search = search_filters(req)
        if search is not None:
            if tree_state is not None:
                raise bad_parameter("tree_state", "'tree_state' does not combine with a search.")
            try:
                items, next_cursor = search_jobs(
                    self.ops.store,
                    search,
                    queue=queue,
                    state=state,
                    tenant=tenant,
                    scope=scope,
                    limit=limit,
                    cursor=req.get_param("cursor") or None,
                )
            except InvalidCursor:
                raise bad_parameter(
                    "cursor", "'cursor' is not a cursor returned by this API."
                ) from None
            except InvalidSearch as exc:
                raise bad_parameter("q", str(exc)) from None
            resp.media = {"items": items, "next_cursor": next_cursor}
            return
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
        "GET": route(
            summary="A job's record, timeline, children, arguments (redacted), attempts, "
            "last traceback and execution (an admin: its tenant's jobs)",
            response=OpsJobOut,
            roles=OPS_READ_ROLES,
            authorize=ops_reader,
            errors=(400, 404),
        ),
        "DELETE": route(
            summary="Drop a failed job: its dead letter and its record",
            status=204,
            roles=OPS_ROLES,
            authorize=ops_actor,
            errors=(400, 404, 409),
        ),
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_get(self, req, resp, job_id):
        scope = ops_scope(req, read=True)
        job_id = str(parse_uuid(job_id, "job_id"))
        try:
            record = self.ops.job(job_id, scope)
        except JobNotFound:
            raise _not_found(job_id, scope) from None
        raw = self.ops.store.raw(job_id) or {}
        resp.media = add_detail(record, raw, operator=scope is None, reader=principal_of(req))

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
        "POST": route(
            summary="Send a dead job again as a new job with a fresh attempt count",
            response=RetryOut,
            status=202,
            roles=OPS_ROLES,
            authorize=ops_actor,
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


class QueuePause:
    """``POST /queues/{name}/pause`` or ``/resume`` (``paused`` says which)."""

    def __init__(self, ops: JobOps, paused: bool):
        self.ops = ops
        self.paused = paused
        what = "Pause" if paused else "Resume"
        self.docs = {
            "POST": route(
                summary=f"{what} a queue for every tenant (workers "
                + ("take no new message; in-flight work finishes" if paused else "take work again")
                + ")",
                response=PauseOut,
                roles=("operator",),
                authorize=_queue_operator,
                errors=(403, 404, 503),
            )
        }

    def on_post(self, req, resp, name):
        principal = req.context.principal
        queue = _queue_name(name)
        try:
            resp.media = self.ops.set_paused(queue, self.paused, principal.sub)
        except redis.RedisError as exc:
            raise _redis_down(exc) from None


class OpsJobRetryFailed:
    docs = {
        "POST": route(
            summary="Retry every failed job matching a filter: a dry run counts them and "
            "answers a confirmation, the real call needs it (an admin: its tenant's jobs)",
            request=RetryFailedIn,
            response=RetryFailedOut,
            roles=OPS_ROLES,
            authorize=ops_actor,
            errors=(409, 422, 503),
        )
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_post(self, req, resp):
        scope = ops_scope(req)
        body = req.context.body
        if body.queue is not None and body.queue not in QUEUE_NAMES:
            raise ApiError(
                falcon.HTTP_422, "Invalid request body", f"There is no queue {body.queue!r}."
            )
        where = FailedFilter(
            queue=body.queue,
            actor=body.actor or None,
            error=body.error or None,
            since_ms=_ms(body.since),
            until_ms=_ms(body.until),
        )
        try:
            if body.dry_run:
                resp.media = self.ops.count_failed(where, scope)
                return
            if not body.confirmation:
                raise ApiError(
                    falcon.HTTP_422,
                    "Confirmation required",
                    'Send the same filter with "dry_run": true first, check the count, '
                    "then send it again with the confirmation that answered.",
                )
            resp.media = self.ops.retry_failed(where, scope, body.confirmation)
        except ConfirmationMismatch as exc:
            raise ApiError(
                falcon.HTTP_409,
                "Confirmation does not fit",
                f"Nothing was retried: {exc.reason}. Count again with a dry run.",
                count=exc.count,
            ) from None
        except redis.RedisError as exc:
            raise _redis_down(exc) from None


class OpsJobClean:
    docs = {
        "POST": route(
            summary="Drop the failed jobs that failed before a time (records and dead "
            "letters; an admin: its tenant's jobs)",
            request=CleanIn,
            response=CleanOut,
            roles=OPS_ROLES,
            authorize=ops_actor,
            errors=(422, 503),
        )
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_post(self, req, resp):
        scope = ops_scope(req)
        body = req.context.body
        if body.state != FAILED_STATE:
            raise ApiError(
                falcon.HTTP_422, "Invalid request body", "Only failed jobs can be cleaned."
            )
        before = _ms(body.before)
        assert before is not None
        try:
            resp.media = self.ops.clean(before, scope)
        except redis.RedisError as exc:
            raise _redis_down(exc) from None


class OpsJobPromote:
    docs = {
        "POST": route(
            summary="Run a delayed job (a retry waiting on its backoff) now, once",
            response=PromoteOut,
            status=202,
            roles=OPS_ROLES,
            authorize=ops_actor,
            errors=(400, 404, 409, 503),
        )
    }

    def __init__(self, ops: JobOps):
        self.ops = ops

    def on_post(self, req, resp, job_id):
        scope = ops_scope(req)
        job_id = str(parse_uuid(job_id, "job_id"))
        try:
            resp.media = self.ops.promote(job_id, scope, principal_of(req).sub)
        except JobNotFound:
            raise _not_found(job_id, scope) from None
        except JobNotDelayed as exc:
            raise ApiError(
                falcon.HTTP_409,
                "Job is not delayed",
                f"Job {job_id} cannot be promoted: {exc.reason}.",
            ) from None
        except redis.RedisError as exc:
            raise _redis_down(exc) from None
        resp.status = falcon.HTTP_202


FAILED_STATE = "failed"


def add_ops_routes(app: falcon.App, docs, ops: JobOps) -> None:
    """``/queues``, ``/jobs``, ``/jobs/{id}`` and ``/jobs/{id}/retry`` (operators, and
    admins for their own tenant); queue pause and resume (operators); bulk retry, clean
    and promote."""
    docs.add_route(app, "/queues", QueueCollection(ops))
    docs.add_route(app, "/queues/{name}/pause", QueuePause(ops, True))
    docs.add_route(app, "/queues/{name}/resume", QueuePause(ops, False))
    docs.add_route(app, "/jobs", OpsJobCollection(ops))
    docs.add_route(app, "/jobs/retry-failed", OpsJobRetryFailed(ops))
    docs.add_route(app, "/jobs/clean", OpsJobClean(ops))
    docs.add_route(app, "/jobs/{job_id}", OpsJobItem(ops))
    docs.add_route(app, "/jobs/{job_id}/retry", OpsJobRetry(ops))
    docs.add_route(app, "/jobs/{job_id}/promote", OpsJobPromote(ops))
