"""What an operator can do with queues and jobs: look, retry a dead job, drop one;
pause and resume a queue, retry or clean failed jobs in bulk, promote a delayed job.

Every method takes the tenant its caller may see: ``None`` for platform operators
(every tenant), a tenant id for that tenant's admin. A job of another tenant, or one
without a tenant, is :class:`JobNotFound` to a tenant's admin, exactly like an unknown
one, so nothing says that it exists.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import dramatiq

from shared.broker import without_outage_retries
from shared.jobstatus import (
    FAILED,
    RETRYING,
    STATES,
    JobStatusStore,
    iso,
    now_ms,
    without_tenant_data,
)
from shared.queues import CATALOG, QUEUE_NAMES
from workflow_service.ops.broker_state import BrokerState

#: Options a dead message carries from its last run that a fresh attempt must not (the
#: attempts a database outage added to ``max_retries`` go too: see ``_fresh_options``).
RUN_OPTIONS = ("retries", "traceback", "requeue_timestamp", "redis_message_id", "eta")

#: Called with the dead message and the new job id before the new job is sent; may
#: return a function that undoes what it did, called if sending fails.
BeforeRetry = Callable[[dramatiq.Message, str], Callable[[], Any] | None]


#: Queue figures counted across tenants: operators only (``None`` in a tenant's rows).
ACROSS_TENANTS = (
    "ready", "delayed", "in_flight", "dead", "processed", "failed", "retried", "workers"
)  # fmt: skip


#: How long a bulk retry's confirmation token stays valid.
CONFIRM_TTL_S = 300


@dataclass(frozen=True)
class FailedFilter:
    """Which failed jobs a bulk action takes: all of them that match every given field.

    ``error`` is a case-insensitive substring of "<error type>: <error message>";
    ``since_ms`` / ``until_ms`` bound when the job failed (inclusive / exclusive).
    """

    queue: str | None = None
    actor: str | None = None
    error: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


class ConfirmationMismatch(Exception):
    """A bulk retry's token is unknown or expired, or no longer fits what it confirmed."""

    def __init__(self, reason: str, *, count: int | None = None):
        super().__init__(reason)
        self.reason = reason
        #: How many jobs match now (when the count changed).
        self.count = count


class JobNotDelayed(Exception):
    """The job is not waiting in its queue's delay queue, so it cannot be promoted."""

    def __init__(self, job_id: str, reason: str):
        super().__init__(reason)
        self.job_id = job_id
        self.reason = reason


class JobNotFound(LookupError):
    def __init__(self, job_id: str):
        super().__init__(job_id)
        self.job_id = job_id


class JobNotDead(Exception):
    """The job is not (or no longer) in its queue's dead-letter set."""

    def __init__(self, job_id: str, reason: str, *, expired: bool = False):
        super().__init__(reason)
        self.job_id = job_id
        self.reason = reason
        #: Its dead letter was deleted by Dramatiq after ``dead_message_ttl``.
        self.expired = expired


class JobOps:
    """Queue overview, ops job listing, retry and deletion of dead jobs."""

    def __init__(
        self,
        store: JobStatusStore,
        broker: dramatiq.Broker,
        state: BrokerState,
        *,
        before_retry: BeforeRetry | None = None,
    ):
        self.store = store
        self.broker = broker
        self.state = state
        #: The workflow service reopens a failed execution there (see BeforeRetry).
        self.before_retry = before_retry

    def queues(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """One row per catalog queue: what waits, runs and died, and what is kept.

        For a tenant: only that tenant's kept records per state; what is counted across
        tenants (broker depths, counters, workers) is ``None``.
        """
        if tenant is not None:
            return self._tenant_queues(tenant)
        depths = self.state.depths(list(QUEUE_NAMES))
        summaries = self.store.summaries(QUEUE_NAMES)
        paused = self.state.paused()
        rows = []
        for name in QUEUE_NAMES:
            depth = depths[name]
            kept, stats = summaries[name]["counts"], summaries[name]["stats"]
            rows.append(
                {
                    **_catalog_fields(name),
                    "ready": depth.ready,
                    "delayed": depth.delayed,
                    "in_flight": depth.in_flight,
                    "dead": depth.dead,
                    **self._kept_fields(name, kept),
                    "processed": int(stats.get("processed", 0)),
                    "failed": int(stats.get("failed", 0)),
                    "retried": int(stats.get("retried", 0)),
                    "workers": summaries[name]["workers"],
                    **_pause_fields(paused.get(name)),
                }
            )
        return rows

    def _tenant_queues(self, tenant: str) -> list[dict[str, Any]]:
        counts = self.store.tenant_counts(QUEUE_NAMES, tenant)
        paused = self.state.paused()
        rows = []
        for name in QUEUE_NAMES:
            rows.append(
                {
                    **_catalog_fields(name),
                    **dict.fromkeys(ACROSS_TENANTS),
                    **self._kept_fields(name, counts[name]),
                    # Whether the queue runs concerns every tenant; who paused it does not.
                    **_pause_fields(paused.get(name)),
                    "paused_by": None,
                }
            )
        return rows

    def _kept_fields(self, name: str, kept: dict[str, int]) -> dict[str, Any]:
        """A queue row's kept job records by state, and how many of each it keeps."""
        return {
            "queued": kept["queued"],
            "running": kept["running"],
            "retrying": kept["retrying"],
            "succeeded_kept": kept["succeeded"],
            "failed_kept": kept["failed"],
            "keep_succeeded": self.store.keep(name, "succeeded"),
            "keep_failed": self.store.keep(name, "failed"),
        }

    def job(self, job_id: str, tenant: str | None = None) -> dict[str, Any]:
        record = self.store.get(job_id)
        if record is None or not _visible(record["tenant_id"], tenant):
            raise JobNotFound(job_id)
        if tenant is None:
            without_tenant_data(record)
        raw = self.store.raw(job_id) or {}
        record["dead_lettered"] = bool(
            record["state"] == FAILED
            and raw.get("broker_id")
            and self.state.is_dead(record["queue"], raw["broker_id"])
        )
        return record

    def list_jobs(
        self,
        *,
        queue: str | None,
        state: str | None,
        tenant: str | None,
        limit: int,
        cursor: str | None,
        scope: str | None = None,
        tree_state: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of jobs; ``tenant`` filters, ``scope`` is the tenant the caller may see.

        Both read one tenant's indexes (no scan); a filter naming another tenant than
        the scope finds nothing. ``tree_state``: root jobs by their tree's state.
        Operators (no scope) get records without tenant data (titles, names, people).
        """
        if scope is not None:
            if tenant is not None and tenant != scope:
                return [], None
            tenant = scope
        items, next_cursor = self.store.list_jobs(
            queues=[queue] if queue else QUEUE_NAMES,
            states=[state] if state else STATES,
            tenant=tenant,
            limit=limit,
            cursor=cursor,
            tree_states=[tree_state] if tree_state else None,
        )
        if scope is None:
            items = [without_tenant_data(item) for item in items]
        return items, next_cursor

    def _dead_record(
        self, job_id: str, tenant: str | None, *, retried_ok: bool = False
    ) -> dict[str, str]:
        raw = self.store.raw(job_id)
        if raw is None or not _visible(raw.get("tenant") or None, tenant):
            raise JobNotFound(job_id)
        if raw.get("state") != FAILED:
            raise JobNotDead(job_id, f"the job is {raw.get('state')}; only failed jobs qualify")
        if raw.get("retried_as") and not retried_ok:
            raise JobNotDead(job_id, f"the job was already retried as {raw['retried_as']}")
        return raw

    def retry(self, job_id: str, tenant: str | None = None) -> dict[str, Any]:
        """Send a dead job again as a new job with a fresh attempt count.

        The new job keeps the message (actor, arguments, tenant) and the parent; the
        records link both ways (``retry_of`` / ``retried_as``). Taking the message out
        of the dead-letter set is atomic, so two operators cannot both retry it. If
        sending fails, the dead letter and what ``before_retry`` did are put back.
        """
        raw = self._dead_record(job_id, tenant)
        queue, broker_id = raw["queue"], raw.get("broker_id", "")
        claimed_at = time.time() * 1000
        data = self.state.claim_dead(queue, broker_id) if broker_id else None
        if data is None:
            raise self._no_dead_letter(job_id, raw)
        dead = dramatiq.Message.decode(data)
        options = _fresh_options(dead.options)
        options["retry_of"] = job_id
        if raw.get("parent"):
            options["parent_job_id"] = raw["parent"]
        fresh: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=queue,
            actor_name=dead.actor_name,
            args=dead.args,
            kwargs=dead.kwargs,
            options=options,
            message_id=str(uuid.uuid4()),
        )
        undo = None
        try:
            if self.before_retry is not None:
                undo = self.before_retry(dead, fresh.message_id)
            self.broker.enqueue(fresh)
        except Exception:
            try:
                if undo is not None:
                    undo()
            finally:
                self.state.restore_dead(queue, broker_id, data, claimed_at)
            raise
        at = now_ms(self.store.clock)
        self.store.transition(
            job_id,
            queue,
            fields={"retried_as": fresh.message_id},
            event={"state": "retried", "at": at, "retried_as": fresh.message_id},
            must_exist=True,
            at_ms=at,
        )
        return {
            "id": fresh.message_id,
            "href": f"/jobs/{fresh.message_id}",
            "retry_of": job_id,
            "enqueued_at": iso(at),
        }

    def _no_dead_letter(self, job_id: str, raw: dict[str, str]) -> JobNotDead:
        """Why a failed job's message is not in the dead-letter set (for the 409)."""
        # Dramatiq deletes dead letters older than its dead_message_ttl (7 days by
        # default) while retention may keep the job's failed record much longer.
        ttl_ms = getattr(self.broker, "dead_message_ttl", None)
        failed_at = raw.get("finished_at") or raw.get("updated_at") or ""
        if (
            isinstance(ttl_ms, int)
            and failed_at.isdigit()
            and now_ms(self.store.clock) - int(failed_at) >= ttl_ms
        ):
            return JobNotDead(
                job_id,
                f"its dead letter expired. The queues keep a failed message for "
                f"{_duration(ttl_ms)} (Dramatiq's dead_message_ttl) and this job failed at "
                f"{iso(failed_at)}, so it can no longer be sent again; its record stays "
                f"until retention prunes it (DELETE /jobs/{job_id} drops it now)",
                expired=True,
            )
        return JobNotDead(
            job_id,
            "its message is no longer in the dead-letter queue (another operator may have "
            "just retried or dropped it, or its dead letter expired)",
        )

    def delete(self, job_id: str, tenant: str | None = None) -> None:
        """Drop a failed job: its message from the dead-letter set and its record."""
        raw = self._dead_record(job_id, tenant, retried_ok=True)
        if raw.get("broker_id"):
            self.state.claim_dead(raw["queue"], raw["broker_id"])
        self.store.delete(job_id)

    # -- queue control ----------------------------------------------------------------

    def set_paused(self, queue: str, paused: bool, by: str) -> dict[str, Any]:
        """Pause or resume a queue (for every tenant: operators only, see resources).

        The flag lives in Redis, so it outlasts worker restarts; the wake-up it sends
        makes the queue's consumers read it at once (see :mod:`shared.broker`).
        """
        self.state.set_paused(queue, paused, by, now_ms(self.store.clock))
        return {"name": queue, **_pause_fields(self.state.paused().get(queue))}

    def paused(self) -> dict[str, dict[str, Any]]:
        return self.state.paused()

    def failed_matching(self, where: FailedFilter, tenant: str | None) -> list[str]:
        """Ids of the failed jobs (of ``tenant``, if given) that match ``where`` and can
        be retried: not retried yet, their message still in the dead-letter set.

        Reads the failed indexes (bounded by the failed retention), by failed time.
        """
        queues = [where.queue] if where.queue else list(QUEUE_NAMES)
        low = where.since_ms if where.since_ms is not None else "-inf"
        high = f"({where.until_ms}" if where.until_ms is not None else "+inf"
        pipe = self.store.client.pipeline(transaction=False)
        for queue in queues:
            pipe.zrangebyscore(self.store.index_key(queue, FAILED, tenant), low, high)
        ids = [m.decode() for members in pipe.execute() for m in members]
        fields = ("queue", "actor", "error_type", "error_message", "retried_as", "broker_id")
        pipe = self.store.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.store.job_key(job_id), *fields)
        needle = where.error.casefold() if where.error else None
        matching = []
        for job_id, values in zip(ids, pipe.execute() if ids else [], strict=True):
            queue, actor, error_type, error_message, retried_as, broker_id = (
                (v or b"").decode() for v in values
            )
            if retried_as or not broker_id:
                continue
            if where.actor and actor != where.actor:
                continue
            if needle and needle not in f"{error_type}: {error_message}".casefold():
                continue
            matching.append((job_id, queue, broker_id))
        pipe = self.store.client.pipeline(transaction=False)
        for _, queue, broker_id in matching:
            self.state.dead_at(pipe, queue, broker_id)
        dead = pipe.execute() if matching else []
        return [job_id for (job_id, _, _), score in zip(matching, dead, strict=True) if score]

    def count_failed(self, where: FailedFilter, tenant: str | None) -> dict[str, Any]:
        """How many failed jobs a bulk retry of ``where`` would send again, and a token
        (single use, valid :data:`CONFIRM_TTL_S`) that confirms exactly that."""
        count = len(self.failed_matching(where, tenant))
        token = uuid.uuid4().hex
        bound = {"tenant": tenant, "filter": asdict(where), "count": count}
        self.store.client.set(self._confirm_key(token), json.dumps(bound), ex=CONFIRM_TTL_S)
        return {"count": count, "confirmation": token, "expires_in_s": CONFIRM_TTL_S}

    def retry_failed(
        self, where: FailedFilter, tenant: str | None, confirmation: str
    ) -> dict[str, Any]:
        """Retry every failed job matching ``where`` (each through :meth:`retry`).

        ``confirmation`` must come from :meth:`count_failed` for the same caller scope,
        filter and count; if the matching set's size changed since, nothing is retried
        (:class:`ConfirmationMismatch` with the new count).
        """
        stored = self.store.client.getdel(self._confirm_key(confirmation))
        if stored is None:
            raise ConfirmationMismatch("the confirmation is unknown, used or expired")
        bound = json.loads(stored)
        if bound["tenant"] != tenant or bound["filter"] != asdict(where):
            raise ConfirmationMismatch("the confirmation was given for another filter")
        ids = self.failed_matching(where, tenant)
        if len(ids) != bound["count"]:
            raise ConfirmationMismatch(
                f"{len(ids)} jobs match now, {bound['count']} when counted", count=len(ids)
            )
        retried, skipped = [], []
        for job_id in ids:
            try:
                retried.append(self.retry(job_id, tenant)["id"])
            except (JobNotFound, JobNotDead):
                skipped.append(job_id)  # taken by another operator meanwhile
        return {"retried": len(retried), "skipped": len(skipped), "jobs": retried}

    def _confirm_key(self, token: str) -> str:
        return f"{self.store.namespace}:ops:confirm:{token}"

    def clean(self, before_ms: int, tenant: str | None) -> dict[str, int]:
        """Drop the failed jobs (of ``tenant``, if given) that failed before ``before_ms``:
        their records and dead letters, like :meth:`delete` one by one. For operators
        (every tenant) also the dead letters that older, whose records retention pruned.
        """
        records = letters = 0
        for queue in QUEUE_NAMES:
            index = self.store.index_key(queue, FAILED, tenant)
            for member in self.store.client.zrangebyscore(index, "-inf", f"({before_ms}"):
                try:
                    self.delete(member.decode(), tenant)
                except (JobNotFound, JobNotDead):
                    continue  # dropped or retried meanwhile
                records += 1
            if tenant is None:
                letters += self.state.drop_dead(queue, self.state.dead_before(queue, before_ms))
        return {"records": records, "dead_letters": letters}

    def promote(self, job_id: str, tenant: str | None, by: str) -> dict[str, Any]:
        """Run a delayed job (a retry waiting on its backoff) now, exactly once.

        The delayed message is in its queue's delay queue: either still in its list, or
        fetched by a worker that holds it in memory until its eta (Dramatiq prefetches
        delayed messages). Its body stays in the delay queue's bodies until then. One
        Lua script takes that body out of the delay queue (list, bodies, and the holding
        worker's unacked set) and pushes a copy without the eta (same message id, same
        attempt count, new Redis id) onto the queue itself. When the held original comes
        due, the worker moves it with a script that also first takes the body
        (``move_due.lua`` of :mod:`shared.dramatiq_redis`): it finds none and sends
        nothing. Whichever
        takes the body sends the message, so it runs once even if promote races the
        eta; a promote that loses answers :class:`JobNotDelayed`. The worker's ack of
        the original then finds nothing to remove, and a worker that dies holding it
        leaves nothing for the maintenance to requeue.
        """
        raw = self.store.raw(job_id)
        if raw is None or not _visible(raw.get("tenant") or None, tenant):
            raise JobNotFound(job_id)
        if raw.get("state") != RETRYING:
            raise JobNotDelayed(
                job_id, f"the job is {raw.get('state')}; only a retrying job waits on a delay"
            )
        queue = raw["queue"]
        found = self.state.find_delayed(queue, job_id)
        if found is None:
            raise JobNotDelayed(job_id, "its retry is no longer delayed (it just came due)")
        delayed_id, message = found
        options = {k: v for k, v in message.options.items() if k != "eta"}
        options["redis_message_id"] = str(uuid.uuid4())
        now: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=queue,
            actor_name=message.actor_name,
            args=message.args,
            kwargs=message.kwargs,
            options=options,
            message_id=message.message_id,
            message_timestamp=message.message_timestamp,
        )
        if not self.state.promote(queue, delayed_id, now):
            raise JobNotDelayed(job_id, "its retry is no longer delayed (it just came due)")
        at = now_ms(self.store.clock)
        self.store.transition(
            job_id,
            queue,
            fields={"next_retry_at": at},
            event={"state": "promoted", "at": at, "by": by},
            must_exist=True,
            at_ms=at,
        )
        return {"id": job_id, "href": f"/jobs/{job_id}", "promoted_at": iso(at)}


def _catalog_fields(name: str) -> dict[str, Any]:
    """A queue row's name and what the queue catalog says of it."""
    spec = CATALOG[name]
    return {
        "name": name,
        "carries": spec.carries,
        "attempts": spec.attempts,
        "backoff": spec.backoff,
        "delay_ms": spec.delay_ms,
    }


def _pause_fields(entry: dict[str, Any] | None) -> dict[str, Any]:
    """The ``paused``, ``paused_by`` and ``paused_at`` fields of a queue row."""
    if entry is None:
        return {"paused": False, "paused_by": None, "paused_at": None}
    return {"paused": True, "paused_by": entry.get("by"), "paused_at": iso(entry.get("at"))}


def _visible(job_tenant: str | None, tenant: str | None) -> bool:
    """Whether a job of ``job_tenant`` is visible to a caller scoped to ``tenant``."""
    return tenant is None or job_tenant == tenant


def _fresh_options(options: dict[str, Any]) -> dict[str, Any]:
    """A dead message's options for a new job: nothing from its runs, and the attempt
    limit it was sent with (not one a database outage raised)."""
    return without_outage_retries({k: v for k, v in options.items() if k not in RUN_OPTIONS})


def _duration(ms: int) -> str:
    units = (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000), ("second", 1000))
    for name, size in units:
        if ms >= size and ms % size == 0:
            count = ms // size
            return f"{count} {name}{'' if count == 1 else 's'}"
    return f"{ms} ms"
