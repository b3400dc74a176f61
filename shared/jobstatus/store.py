"""Job records in Redis: the keys, the one Lua script that changes them, and the reads.

The scripts are the ``.lua`` files of this package (``apply.lua`` changes records,
``delete.lua`` drops one; both use the functions of ``rollup.lua`` and ``search.lua``).

A record is a hash ``<ns>:job:<message id>`` with a timeline list (``:events``) and a
sorted set of child jobs (``:children``). Sorted sets per (queue, state) and per
(tenant, queue, state) index records by when they entered their state. A record's
tenant, once written, never changes (later changes cannot move a job to another
tenant's index); a record without one is in no tenant's index.

Every change is a *transition* (a small dict); :meth:`JobStatusStore.apply` sends any
number of them in one Lua call, i.e. one round trip. Per transition the script moves
the record between state indexes, appends to the timeline, links a child to its
parent, bumps the queue's counters and duration histogram, and prunes the oldest
succeeded / failed records beyond the queue's retention (with their dead letters).
Records of queued, running and retrying jobs are never pruned.

Retention counts per (tenant, queue, state): another tenant's burst never prunes a
caller's job. No record younger than ``min_age_s`` (``JOB_MIN_AGE_SECONDS``, one hour)
is pruned by the counts; a cap per queue and state (``JOB_MAX_RECORDS``, 10,000
succeeded, held and failed each) drops the oldest whatever their age and tenant, so
memory stays bounded under any burst. Records without a tenant count as tenant "".

Search indexes (:meth:`JobStatusStore.search`), kept by the same script and dropped
with the record: sorted sets ``<ns>:jobs:s:<kind>:<value>`` (every tenant) and
``<ns>:jobs:t:<tenant>:s:<kind>:<value>`` of job ids, by ``actor`` (when the record is
made), by ``entity`` id (when the job names its subject), and by ``error`` word (the
first 24 words of a failed job's error type and message). They hold only kept
records, so they are bounded by the retention above (two to 50 entries a record).

Tree state (``tree_state``, ``tree_cause``): how a job's whole tree stands, the job
and everything it started, down to the webhooks an execution sent. The precedence is
failed > retrying > waiting > running > queued > cancelled > succeeded: a job's tree
state is the highest of its own and its children's, so ``succeeded`` means that every
descendant succeeded. A job's own state counts as ``waiting`` while it carries a
``waiting`` marker (an execution parked for a person, written by the workflow service;
rewritten when the people change, e.g. the next approval stage opens) that no
``waiting_ended`` has closed; a failed job an operator retried counts as its retry
(a sibling). When the workflow service ends a job's execution from outside its run
(cancelled by a person, or by a deleted, archived or moved-on entity; failed because
nobody is left to decide), it writes ``ended`` (``cancelled`` or ``failed``) and
``ended_reason`` on the execution's run job, closing its marker: the job then counts
as ``cancelled`` (an operator sees the work stopped on purpose: nothing waits, nothing
broke, yet it did not all succeed) or ``failed`` once its own state is lower.
``tree_cause`` names the job that decides the tree state (its id, actor, error, the
people it waits for, or how its execution ended).

The rollup is kept incrementally, in the same Lua call that changes a record: each job
keeps its children's tree states in a sorted set scored by precedence (``:tree``), so
recomputing a job is one HMGET and one ZREVRANGE, and a change walks up the parent
chain (at most :data:`MAX_TREE_DEPTH` levels) only while an ancestor's tree state or
cause changes; a typical change stops one level up. Reading it costs nothing extra,
and root jobs (no parent: a write's job, a manual run) are indexed per (tenant, queue,
tree state), so ``?tree_state=failed`` reads one sorted set per queue instead of
walking trees. Reading trees on request was the alternative: bounded (1000
descendants, depth 10) it still costs a round trip per level for each job shown and
cannot answer the filter without scanning, so it was not taken. A failure (or a
cancelled end) pruned by retention still counts in its parent's tree (the cause then
names only its id). A succeeded root whose tree did not finish well (failed, or still
retrying, waiting, running or queued) is not pruned with the succeeded records: it
leaves the succeeded index for the queue's ``held`` set, kept like failed records (the
last ``keep_failed``), so ``?tree_state=failed`` still finds it.

Each state change carries a *rank* that only grows over a job's life (queued 0,
running 10n+1, retrying 10n+2, succeeded/failed 10n+3 for attempt n). A transition
that arrives after a later one (different processes write one job's record) does not
move the record back; it only fills fields still empty, and its timeline entry is
sorted into place when read.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis

from shared.dramatiq_redis import BODIES_SUFFIX, DEAD_SUFFIX, read_lua
from shared.jobstatus.views import present, present_event
from shared.queues import CATALOG

QUEUED = "queued"
RUNNING = "running"
RETRYING = "retrying"
SUCCEEDED = "succeeded"
FAILED = "failed"
STATES: tuple[str, ...] = (QUEUED, RUNNING, RETRYING, SUCCEEDED, FAILED)
#: States whose records retention prunes; the others are waiting or running jobs.
TERMINAL_STATES: tuple[str, ...] = (SUCCEEDED, FAILED)

#: Timeline entries kept per job (a 10-attempt job needs 21).
MAX_EVENTS = 64
#: Upper bounds (seconds) of the duration histogram's buckets.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
)  # fmt: skip
#: Counters kept per queue (``<ns>:jobs:stats:<queue>`` hash fields).
COUNTERS: tuple[str, ...] = ("enqueued", "processed", "succeeded", "failed", "retried")
#: Workers refresh their presence this often; a worker unseen for the window is gone.
WORKER_BEAT_S = 10.0
WORKER_SEEN_WINDOW_S = 60.0
#: Tree states, lowest precedence first: a job's ``tree_state`` is the highest of its
#: own state and its children's tree states (see :mod:`shared.jobstatus`).
TREE_STATES: tuple[str, ...] = (
    "succeeded", "cancelled", "queued", "running", "waiting", "retrying", "failed",
)  # fmt: skip
#: How many levels above a changed job its ancestors' tree states are updated.
MAX_TREE_DEPTH = 10
#: Rank of a note about a job (an operator's retry) that comes after its end.
NOTE_RANK = 1_000_000
#: Retention never prunes a record younger than this (``JOB_MIN_AGE_SECONDS``).
DEFAULT_MIN_AGE_S = 3600.0
#: Safety valve: succeeded, held and failed records kept per queue at most, whatever
#: their age and tenant (``JOB_MAX_RECORDS``).
DEFAULT_MAX_RECORDS = 10_000
#: Search: index entries examined per request at most (a page may come back short,
#: with a cursor to go on).
SEARCH_SCAN_LIMIT = 2000
_WORD = re.compile(rb"[a-z0-9]+")


def _script(*names: str) -> str:
    return "\n".join(read_lua("shared.jobstatus", name) for name in names)


#: The record script (see :meth:`JobStatusStore.apply`) and the delete script, each sent
#: with the rollup and search functions in front of it.
_APPLY = _script("rollup", "search", "apply")
_DELETE = _script("rollup", "search", "delete")


#: One encoder, built once: ``json.dumps`` with non-default separators builds a new one
#: on every call, which costs more than encoding a small event.
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class InvalidCursor(ValueError):
    """A pagination cursor that this store did not hand out."""


class InvalidSearch(ValueError):
    """A search the indexes cannot answer (its message says why)."""


def error_words(text: str) -> list[str]:
    """The words of an error that its search index holds: ASCII letters and digits,
    3 to 40 long, the first 24 distinct ones (as the record script takes them)."""
    out: list[str] = []
    for word in _WORD.findall(text.encode("utf-8", "replace").lower()):
        if 3 <= len(word) <= 40 and word.decode() not in out:
            out.append(word.decode())
            if len(out) == 24:
                break
    return out


def _subject_of(data: dict[str, str]) -> dict[str, Any]:
    try:
        subject = json.loads(data.get("subject") or "{}")
    except ValueError:
        return {}
    return subject if isinstance(subject, dict) else {}


def _created_ms(data: dict[str, str]) -> int | None:
    for name in ("enqueued_at", "started_at", "updated_at"):
        if data.get(name):
            try:
                return int(float(data[name]))
            except ValueError:
                continue
    return None


def now_ms(clock: Callable[[], float] = time.time) -> int:
    return int(clock() * 1000)


def duration_bucket(seconds: float) -> str:
    """The histogram field a duration counts in (upper bound, non-cumulative)."""
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return f"le:{bound:g}"
    return "le:+Inf"


def encode_cursor(score: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{int(score)}:{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        score, job_id = base64.urlsafe_b64decode(padded.encode()).decode().split(":", 1)
        return int(score), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("cursor is not one this API returned") from None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(data: dict) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in data.items()}


def _strings(values: dict[str, Any] | None) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in (values or {}).items()}


class JobStatusStore:
    """Reads and writes job records under one namespace.

    ``keep_succeeded`` / ``keep_failed`` override the catalog's per-queue retention
    (for every queue) when given; the counts are kept per tenant. No record younger
    than ``min_age_s`` (in its state) is pruned by them; ``max_records`` caps the
    succeeded, held and failed records of each queue whatever their age (None: no cap).
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        *,
        keep_succeeded: int | None = None,
        keep_failed: int | None = None,
        min_age_s: float = DEFAULT_MIN_AGE_S,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.namespace = namespace
        self.keep_succeeded = keep_succeeded
        self.keep_failed = keep_failed
        self.min_age_s = min_age_s
        self.max_records = max_records
        self.clock = clock
        self._apply = client.register_script(_APPLY)
        self._delete = client.register_script(_DELETE)

    # -- keys -------------------------------------------------------------------------

    def job_key(self, job_id: str) -> str:
        return f"{self.namespace}:job:{job_id}"

    def index_key(self, queue: str, state: str, tenant: str | None = None) -> str:
        if tenant:
            return f"{self.namespace}:jobs:t:{tenant}:{queue}:{state}"
        return f"{self.namespace}:jobs:{queue}:{state}"

    def tree_index_key(self, queue: str, tree_state: str, tenant: str | None = None) -> str:
        """Root jobs of ``queue`` (of ``tenant``) whose tree is in ``tree_state``."""
        return self.index_key(queue, f"tree.{tree_state}", tenant)

    def stats_key(self, queue: str) -> str:
        return f"{self.namespace}:jobs:stats:{queue}"

    def workers_key(self, queue: str) -> str:
        return f"{self.namespace}:jobs:workers:{queue}"

    def keep(self, queue: str, state: str) -> int:
        """How many records of ``state`` the store keeps for ``queue`` (-1: all)."""
        spec = CATALOG.get(queue)
        if state == SUCCEEDED:
            if self.keep_succeeded is not None:
                return self.keep_succeeded
            return spec.keep_succeeded if spec else 100
        if state == FAILED:
            if self.keep_failed is not None:
                return self.keep_failed
            return spec.keep_failed if spec else 1000
        return -1

    # -- writing ----------------------------------------------------------------------

    def change(
        self,
        job_id: str,
        queue: str,
        *,
        state: str = "",
        rank: int = 0,
        tenant: str = "",
        fields: dict[str, Any] | None = None,
        identity: dict[str, Any] | None = None,
        event: dict[str, Any] | None = None,
        parent: str = "",
        stats: Sequence[str] = (),
        duration_s: float | None = None,
        must_exist: bool = False,
        at_ms: int | None = None,
    ) -> dict[str, Any]:
        """Build one transition for :meth:`apply`.

        ``fields`` are set on the record (only where empty if the change is late),
        ``identity`` fields only where empty; ``event`` joins the timeline.
        """
        at = at_ms if at_ms is not None else now_ms(self.clock)
        if event is not None:
            event = {**event, "at": at, "r": rank if state else NOTE_RANK}
        return {
            "id": job_id,
            "q": queue,
            "t": tenant or "",
            "s": state,
            "r": rank,
            "at": at,
            "k": self.keep(queue, state) if state else -1,
            # Succeeded roots whose tree did not succeed are held under the failed
            # retention (see the module docstring).
            "h": self.keep(queue, FAILED) if state == SUCCEEDED else -1,
            "f": _strings(fields),
            "n": _strings(identity),
            "e": [_compact(event)] if event else [],
            "p": parent or "",
            "c": list(stats),
            "b": [duration_bucket(duration_s)] if duration_s is not None else [],
            "d": [repr(duration_s)] if duration_s is not None else [],
            "x": 1 if must_exist else 0,
        }

    def apply(
        self, transitions: Sequence[dict[str, Any]], *, client: Any = None, loaded: bool = False
    ) -> int:
        """Apply transitions in order, in one round trip; returns how many applied.

        With ``client`` a pipeline, the call is queued on it (and returns 0); ``loaded``
        says the script is known to be in Redis (no SCRIPT EXISTS before it).
        """
        if not transitions:
            return 0
        args = [
            self.namespace,
            MAX_EVENTS,
            _compact(transitions),
            MAX_TREE_DEPTH,
            int(self.min_age_s * 1000),
            -1 if self.max_records is None else self.max_records,
            DEAD_SUFFIX,
            BODIES_SUFFIX,
        ]
        if client is not None and loaded:
            client.evalsha(self._apply.sha, 0, *args)  # type: ignore[attr-defined]
            return 0
        reply = self._apply(args=args, client=client)
        return 0 if client is not None else int(reply)

    def transition(self, job_id: str, queue: str, **kwargs: Any) -> bool:
        """Build and apply one transition (see :meth:`change`)."""
        return self.apply([self.change(job_id, queue, **kwargs)]) == 1

    def delete(self, job_id: str) -> bool:
        """Drop a record, its timeline and its children set, and unlink it from its parent."""
        args = [self.namespace, job_id, now_ms(self.clock), MAX_TREE_DEPTH]
        return bool(self._delete(args=args))

    # -- reading ----------------------------------------------------------------------

    def raw(self, job_id: str) -> dict[str, str] | None:
        data = self.client.hgetall(self.job_key(job_id))
        return _decode(data) if data else None

    def get(self, job_id: str, *, children_limit: int = 50) -> dict[str, Any] | None:
        """The public record with its timeline and a summary of its children."""
        key = self.job_key(job_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.lrange(f"{key}:events", 0, -1)
        pipe.zrange(f"{key}:children", 0, -1)
        data, events, child_ids = pipe.execute()
        if not data:
            return None
        fields = _decode(data)
        record = present(fields)
        if record["result"] is not None:
            record["result"]["value"] = self._result_value(fields["result_key"])
        timeline = [json.loads(e) for e in events]
        timeline.sort(key=lambda e: e.get("r", 0))  # stable: arrival order within a rank
        record["timeline"] = [present_event(e) for e in timeline]
        record["children"] = self.children_summary(
            [_text(c) for c in child_ids], limit=children_limit, tenant=record["tenant_id"]
        )
        return record

    def _result_value(self, key: str) -> Any:
        """The job's return value from Dramatiq's Results backend (None once expired)."""
        stored = self.client.lindex(key, 0)
        if stored is None:
            return None
        try:
            return json.loads(stored)
        except ValueError:
            return None

    def children_summary(
        self, child_ids: list[str], *, limit: int = 50, tenant: str | None = None
    ) -> dict[str, Any]:
        """Counts per state and the first ``limit`` children (of ``tenant`` only, if given)."""
        pipe = self.client.pipeline(transaction=False)
        for child in child_ids:
            pipe.hmget(
                self.job_key(child), "state", "actor", "queue", "progress", "tenant", "tree_state"
            )
        by_state: dict[str, int] = {}
        items: list[dict[str, Any]] = []
        total = 0
        for child, (state, actor, queue, progress, child_tenant, tree_state) in zip(
            child_ids, pipe.execute() if child_ids else [], strict=True
        ):
            if tenant and state is not None and (_text(child_tenant) or None) != tenant:
                continue
            total += 1
            state_text = _text(state) or "pruned"
            by_state[state_text] = by_state.get(state_text, 0) + 1
            if len(items) < limit:
                items.append(
                    {
                        "id": child,
                        "state": state_text,
                        "actor": _text(actor) or None,
                        "queue": _text(queue) or None,
                        "progress": int(progress) if progress not in (None, b"") else None,
                        "tree_state": _text(tree_state) or _text(state) or None,
                        "href": f"/jobs/{child}",
                    }
                )
        return {"total": total, "by_state": by_state, "items": items}

    def list_jobs(
        self,
        *,
        queues: Iterable[str],
        states: Iterable[str] = STATES,
        tenant: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        tree_states: Iterable[str] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Records newest first (by when they entered their state), and the next cursor.

        With ``tree_states``: root jobs whose tree is in one of them, newest first by
        when their tree entered it (``states`` is then ignored); one sorted set per
        queue and tree state, never a walk through the trees.

        The cursor is (score, id) of the last item; ties on the score are broken by id,
        so pages never repeat or skip a record that stays in its state.
        """
        after = decode_cursor(cursor) if cursor else None
        if tree_states is not None:
            keys = [self.tree_index_key(q, s, tenant) for q in queues for s in tree_states]
        else:
            keys = [self.index_key(q, s, tenant) for q in queues for s in states]
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            if after is None:
                pipe.zrevrangebyscore(key, "+inf", "-inf", start=0, num=limit + 1, withscores=True)
            else:
                # Strictly older records, plus every record tied with the cursor's score
                # (the ids decide which of those come after the cursor).
                pipe.zrevrangebyscore(
                    key, f"({after[0]}", "-inf", start=0, num=limit + 1, withscores=True
                )
                pipe.zrangebyscore(key, after[0], after[0], withscores=True)
        fetched = pipe.execute()
        if after is not None:
            fetched = [a + b for a, b in zip(fetched[0::2], fetched[1::2], strict=True)]
        candidates: list[tuple[int, str]] = []
        for rows in fetched:
            for member, score in rows:
                item = (int(score), _text(member))
                if after is None or item < after:
                    candidates.append(item)
        candidates.sort(reverse=True)
        page = candidates[:limit]
        pipe = self.client.pipeline(transaction=False)
        for _, job_id in page:
            pipe.hgetall(self.job_key(job_id))
        items = [present(_decode(data)) for data in (pipe.execute() if page else []) if data]
        next_cursor = encode_cursor(*page[-1]) if len(candidates) > limit else None
        return items, next_cursor

    def search_key(self, kind: str, value: str, tenant: str | None = None) -> str:
        """Ids of jobs by ``kind`` (``actor``, ``entity``, ``error`` word) and ``value``."""
        if tenant:
            return f"{self.namespace}:jobs:t:{tenant}:s:{kind}:{value}"
        return f"{self.namespace}:jobs:s:{kind}:{value}"

    def search(
        self,
        *,
        queues: Iterable[str],
        tenant: str | None = None,
        entity_id: str | None = None,
        actor: str | None = None,
        states: Iterable[str] | None = None,
        q: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
        scan_limit: int = SEARCH_SCAN_LIMIT,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Jobs matching every given filter, newest first, and the next cursor.

        One index is read (the first given of: entity id, a word of ``q``, actor, else
        the state indexes of ``queues``), newest first from the cursor, and each entry's
        record is checked against the other filters: at most ``scan_limit`` entries per
        call, so a page may be short and still carry a cursor. ``q`` matches failed jobs
        whose "<type>: <message>" contains it (case-insensitive); it needs a word of 3
        to 40 letters or digits among the error's first 24 (:func:`error_words`).
        ``since_ms`` / ``until_ms`` bound when the job was created (enqueued).
        """
        queue_set = set(queues)
        state_set = set(states) if states else None
        needle = q.lower() if q else None
        if needle is not None:
            words = error_words(needle)
            if not words:
                raise InvalidSearch("'q' needs a word of 3 to 40 letters or digits.")
            if state_set is not None and FAILED not in state_set:
                return [], None
        if entity_id:
            keys = [self.search_key("entity", entity_id, tenant)]
        elif needle is not None:
            keys = [self.search_key("error", max(words, key=len), tenant)]
        elif actor:
            keys = [self.search_key("actor", actor, tenant)]
        else:
            keys = [
                self.index_key(qn, st, tenant) for qn in queue_set for st in state_set or STATES
            ]

        def accept(data: dict[str, str]) -> bool:
            if not data or data.get("queue") not in queue_set:
                return False
            if tenant and data.get("tenant") != tenant:
                return False
            if state_set is not None and data.get("state") not in state_set:
                return False
            if actor and data.get("actor") != actor:
                return False
            if entity_id:
                subject = _subject_of(data)
                if subject.get("entity_id") != entity_id:
                    return False
            if needle is not None:
                if data.get("state") != FAILED:
                    return False
                text = f"{data.get('error_type', '')}: {data.get('error_message', '')}"
                if needle not in text.lower():
                    return False
            created = _created_ms(data)
            if since_ms is not None and (created is None or created < since_ms):
                return False
            return not (until_ms is not None and (created is None or created >= until_ms))

        after = decode_cursor(cursor) if cursor else None
        low = "-inf" if since_ms is None else since_ms
        items: list[dict[str, Any]] = []
        examined = 0
        more = True
        while len(items) < limit and examined < scan_limit:
            batch = self._ids_after(keys, after, low, min(limit * 2, 200))
            if not batch:
                more = False
                break
            pipe = self.client.pipeline(transaction=False)
            for _, job_id in batch:
                pipe.hgetall(self.job_key(job_id))
            for item, data in zip(batch, pipe.execute(), strict=True):
                examined += 1
                after = item
                fields = _decode(data) if data else {}
                if accept(fields):
                    items.append(present(fields))
                    if len(items) == limit:
                        break
        if more and after is not None:
            more = bool(self._ids_after(keys, after, low, 1))
        return items, encode_cursor(*after) if more and after is not None else None

    def _ids_after(
        self, keys: Sequence[str], after: tuple[int, str] | None, low: Any, count: int
    ) -> list[tuple[int, str]]:
        """The next ``count`` (score, id) of the union of ``keys``, newest first, after
        ``after`` (ties on the score broken by id, as in :meth:`list_jobs`)."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            if after is None:
                pipe.zrevrangebyscore(key, "+inf", low, start=0, num=count, withscores=True)
            else:
                pipe.zrevrangebyscore(key, f"({after[0]}", low, start=0, num=count, withscores=True)
                pipe.zrangebyscore(key, after[0], after[0], withscores=True)
        seen: set[tuple[int, str]] = set()
        for rows in pipe.execute():
            for member, score in rows:
                item = (int(score), _text(member))
                if after is None or item < after:
                    seen.add(item)
        return sorted(seen, reverse=True)[:count]

    def counts(self, queue: str) -> dict[str, int]:
        """Records kept per state for one queue."""
        pipe = self.client.pipeline(transaction=False)
        for state in STATES:
            pipe.zcard(self.index_key(queue, state))
        return dict(zip(STATES, pipe.execute(), strict=True))

    def tenant_counts(self, queues: Sequence[str], tenant: str) -> dict[str, dict[str, int]]:
        """Records of one tenant kept per queue and state, from the tenant's indexes."""
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            for state in STATES:
                pipe.zcard(self.index_key(queue, state, tenant))
        values = iter(pipe.execute())
        return {queue: {state: next(values) for state in STATES} for queue in queues}

    def stats(self, queue: str) -> dict[str, float]:
        """Counters and raw histogram fields of one queue."""
        return {k: float(v) for k, v in _decode(self.client.hgetall(self.stats_key(queue))).items()}

    def summaries(self, queues: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per queue: records kept per state, counters, workers seen; one round trip."""
        since = self.clock() - WORKER_SEEN_WINDOW_S
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            for state in STATES:
                pipe.zcard(self.index_key(queue, state))
            pipe.hgetall(self.stats_key(queue))
            pipe.zrangebyscore(self.workers_key(queue), since, "+inf")
        values = iter(pipe.execute())
        out = {}
        for queue in queues:
            counts = {state: next(values) for state in STATES}
            stats = {k: float(v) for k, v in _decode(next(values)).items()}
            workers = [_text(w) for w in next(values)]
            out[queue] = {"counts": counts, "stats": stats, "workers": workers}
        return out

    # -- worker presence --------------------------------------------------------------

    def workers_seen(self, queue: str, window_s: float = WORKER_SEEN_WINDOW_S) -> list[str]:
        since = self.clock() - window_s
        return [_text(w) for w in self.client.zrangebyscore(self.workers_key(queue), since, "+inf")]

    def beat(self, worker: str, queues: Iterable[str]) -> None:
        """Say that ``worker`` consumes ``queues`` now; forget workers long gone."""
        now = self.clock()
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.zadd(self.workers_key(queue), {worker: now})
            pipe.zremrangebyscore(self.workers_key(queue), "-inf", now - 10 * WORKER_SEEN_WINDOW_S)
        pipe.execute()

    def forget_worker(self, worker: str, queues: Iterable[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.zrem(self.workers_key(queue), worker)
        pipe.execute()


def coalesce(transitions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge successive transitions of one job into one (same outcome, less work).

    A fast job's running and succeeded usually travel in the same batch; merged, the
    record is touched once, while the timeline still gets both entries. Jobs keep the
    order of their first transition; one job's changes keep theirs.
    """
    merged: dict[str, dict[str, Any]] = {}
    for t in transitions:
        into = merged.get(t["id"])
        if into is None:
            merged[t["id"]] = {
                **t,
                "f": dict(t["f"]),
                "n": dict(t["n"]),
                "e": list(t["e"]),
                "c": list(t["c"]),
                "b": list(t["b"]),
                "d": list(t["d"]),
            }
            continue
        if t["s"]:
            for key in ("q", "t", "s", "r", "at", "k", "h"):
                into[key] = t[key]
        into["f"].update(t["f"])
        for name, value in t["n"].items():
            into["n"].setdefault(name, value)
        into["e"] += t["e"]
        into["c"] += t["c"]
        into["b"] += t["b"]
        into["d"] += t["d"]
        into["p"] = into["p"] or t["p"]
        into["x"] = into["x"] and t["x"]
    return list(merged.values())
