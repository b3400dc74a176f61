"""The Dramatiq middleware that records every message's life, and ``report_progress``.

Who writes which state:

* ``queued``    - ``before_enqueue`` in the sending process (before the message exists
  in Redis, so no worker can start it first).
* ``running``   - ``before_process_message``; ``attempt`` is the run number (1 = first).
* ``retrying``  - ``before_enqueue`` of the Retries middleware's re-enqueue of the same
  message: the failed attempt's error, the delay and the time of the next attempt.
* ``succeeded`` - ``after_process_message`` without an exception.
* ``failed``    - ``after_nack``: retries exhausted or not retryable; the message is in
  the queue's dead-letter set.

A process that only sends (the api, the relay, an operator's retry) writes its record
with the message, in the broker's same round trip (:meth:`JobStatus.gathered`), so a
job id it hands out can be read straight away. Inside a worker, writes go
to a background writer that sends whatever has piled up in one round trip: the message
path never waits for Redis on the job's account, which keeps the cost of recording
small (the trigger path is hot). Writing a record never breaks message handling: a
Redis error is logged and the record falls behind.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import dramatiq
import redis
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import CurrentMessage, Middleware, Retries
from dramatiq.results import Results

from shared.jobstatus.stats import LATENCY_FIELD, MinuteStats
from shared.jobstatus.store import (
    FAILED,
    QUEUED,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    WORKER_BEAT_S,
    JobStatusStore,
    coalesce,
    now_ms,
)
from shared.jobstatus.views import error_summary
from shared.jobstatus.workers import WorkerPresence, package_version
from shared.queues import CATALOG, base_queue_name
from shared.threads import ProcessThread

logger = logging.getLogger(__name__)

MAX_PROGRESS_MESSAGE_CHARS = 200
#: Longest value kept in a job's subject (a title, a workflow name).
MAX_SUBJECT_CHARS = 200
#: Why an execution was ended from outside its run, as kept on its run job.
MAX_ENDED_REASON_CHARS = 500
#: The last failure's traceback is kept up to this many characters (its end: the frame
#: that raised).
MAX_TRACEBACK_CHARS = 8192
#: A job's arguments are kept (for its detail view) up to this many characters of JSON;
#: longer ones keep only their size. Readers see them redacted (see the ops views).
MAX_ARGS_CHARS = 4096


def traceback_text(exc: BaseException | None) -> str:
    """The traceback of ``exc`` (with its causes), its last MAX_TRACEBACK_CHARS."""
    if exc is None:
        return ""
    text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "\u2026" + text[-(MAX_TRACEBACK_CHARS - 1) :]
    return text


def args_text(message: dramatiq.Message) -> str:
    """A message's arguments as kept on its record (bounded JSON)."""
    try:
        text = json.dumps(
            {"args": list(message.args), "kwargs": dict(message.kwargs)},
            separators=(",", ":"),
            default=str,
        )
    except (TypeError, ValueError):
        return ""
    if len(text) > MAX_ARGS_CHARS:
        return json.dumps({"truncated": True, "chars": len(text)})
    return text


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def rank(state: str, attempt: int) -> int:
    """Order of a state change within a job's life (see :mod:`shared.jobstatus.store`)."""
    return attempt * 10 + {QUEUED: 0, RUNNING: 1, RETRYING: 2, SUCCEEDED: 3, FAILED: 3}[state]


class BatchWriter:
    """Sends transitions from worker threads in batches, off the message path.

    One thread per process, started on first use; FIFO, so one process's changes to a
    job land in the order they happened (ranks order them across processes).
    """

    MAX_BATCH = 500
    ATTEMPTS = 3
    #: How long the writer lets changes gather before sending them (records lag by
    #: about this much plus one round trip).
    GATHER_S = 0.005

    def __init__(self, store: JobStatusStore):
        self.store = store
        #: Per-minute queue figures, sent in the same round trip as each batch.
        self.stats = MinuteStats(store.client, store.namespace, clock=store.clock)
        self.pending: collections.deque[dict[str, Any]] = collections.deque()
        self.cond = threading.Condition()
        self.sending = False
        self.thread = ProcessThread(self._run, "job-status-writer", lambda: self.flush(2.0))

    def put(self, transition: dict[str, Any]) -> None:
        with self.cond:
            self.pending.append(transition)
            self.thread.ensure()
            if len(self.pending) == 1 and not self.sending:
                # Wake the writer only when it sleeps on an empty queue: a thread woken
                # for every change would fight the worker threads for the GIL.
                self.cond.notify_all()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.pending:
                    self.cond.wait()
            # Let the changes of a moment gather (a job's running and succeeded often
            # come together), then send them in one round trip.
            time.sleep(self.GATHER_S)
            with self.cond:
                count = min(len(self.pending), self.MAX_BATCH)
                batch = [self.pending.popleft() for _ in range(count)]
                self.sending = True
            try:
                self._send(batch)
            finally:
                with self.cond:
                    self.sending = False
                    self.cond.notify_all()

    def _send(self, batch: list[dict[str, Any]]) -> None:
        figures = self.stats.gather(batch)
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                self.stats.send(self.store, coalesce(batch), figures)
                return
            except redis.RedisError as exc:
                if attempt == self.ATTEMPTS:
                    logger.warning("Dropped %d job status changes: %s", len(batch), exc)
                    return
                time.sleep(0.05 * attempt)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything put so far has been sent (True) or ``timeout`` passed."""
        with self.cond:
            return self.cond.wait_for(lambda: not self.pending and not self.sending, timeout)


class _ThreadState(threading.local):
    #: The message this worker thread is processing, from before_process_message to
    #: its ack / nack, and its attempt number and start time.
    current: Any = None
    attempt: int = 0
    started: float = 0.0
    #: (message id, error type, error message, traceback) of the attempt that just raised.
    error: tuple[str, str, str, str] | None = None
    #: The current message reported progress (so success shows it complete).
    progressed: bool = False
    #: True in a worker's consumer threads (their enqueues move due delayed messages).
    consumer: bool = False
    #: Inside :meth:`JobStatus.gathered`: where records to write at once go instead.
    gathered: list[dict[str, Any]] | None = None


class JobStatus(Middleware):
    """Records each message's life in a :class:`JobStatusStore`.

    Must come after Retries, CurrentMessage and Results in the middleware list: its
    ``after_process_message`` then runs before Retries' (Dramatiq runs "after" hooks
    in reverse), so it can note the error that Retries is about to act on.
    """

    def __init__(self, store: JobStatusStore):
        self.store = store
        self.writer = BatchWriter(store)
        self.local = _ThreadState()
        self._max_attempts: dict[tuple[str, str], int | None] = {}
        self._results: Any = None
        self._beat_stop = threading.Event()
        self._worker_queues: list[str] = []
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self.presence = WorkerPresence(store.client, store.namespace, clock=store.clock)
        #: Job ids in flight in this process, by worker thread.
        self._in_flight: dict[int, str] = {}
        self._threads = 0
        self._started_at = 0.0

    # -- helpers ----------------------------------------------------------------------

    @contextlib.contextmanager
    def gathered(self, into: list[dict[str, Any]]) -> Iterator[None]:
        """Within: the records this thread would write at once go to ``into`` instead.

        The broker sends them in the same round trip as the messages they describe.
        """
        self.local.gathered = into
        try:
            yield
        finally:
            self.local.gathered = None

    def _record(
        self,
        job_id: str,
        queue: str,
        *,
        now: bool = False,
        latency_ms: int | None = None,
        **kwargs: Any,
    ) -> None:
        transition = self.store.change(job_id, queue, **kwargs)
        if latency_ms is not None:
            transition[LATENCY_FIELD] = latency_ms  # for the per-minute figures only
        if not now:
            self.writer.put(transition)
            return
        if self.local.gathered is not None:
            self.local.gathered.append(transition)
            return
        try:
            self.store.apply([transition])
        except redis.RedisError as exc:
            logger.warning("Could not record the status of job %s: %s", job_id, exc)

    def max_attempts(self, broker: dramatiq.Broker, message: dramatiq.Message) -> int | None:
        override = message.options.get("max_retries")
        if override is not None:
            return int(override) + 1
        cache_key = (message.queue_name, message.actor_name)
        if cache_key not in self._max_attempts:
            retries: int | None = None
            with contextlib.suppress(ActorNotFound):
                retries = broker.get_actor(message.actor_name).options.get("max_retries")
            if retries is None:
                spec = CATALOG.get(base_queue_name(message.queue_name))
                retries = spec.max_retries if spec is not None else None
            if retries is None:
                retries = next(
                    (m.max_retries for m in broker.middleware if isinstance(m, Retries)), None
                )
            self._max_attempts[cache_key] = None if retries is None else retries + 1
        return self._max_attempts[cache_key]

    def _result_key(self, broker: dramatiq.Broker, message: dramatiq.Message) -> str:
        if self._results is None:
            self._results = next((m for m in broker.middleware if isinstance(m, Results)), False)
        if not self._results:
            return ""
        store_results, _ = self._results._lookup_options(broker, message)
        return self._results.backend.build_message_key(message) if store_results else ""

    @staticmethod
    def _identity(message: dramatiq.Message) -> dict[str, Any]:
        """Fields that name the job; written where a record has none yet."""
        return {
            "id": message.message_id,
            "queue": base_queue_name(message.queue_name),
            "actor": message.actor_name,
            "tenant": message.options.get("tenant_id") or "",
        }

    def _error_of(self, message: Any) -> tuple[str, str, str]:
        """Type, short message and bounded traceback of the attempt that just failed."""
        stashed = self.local.error
        if stashed and stashed[0] == message.message_id:
            return stashed[1], stashed[2], stashed[3]
        exc = getattr(message, "_exception", None)
        return (*error_summary(exc), traceback_text(exc))

    def _duration(self) -> float | None:
        started, self.local.started = self.local.started, 0.0
        return time.monotonic() - started if started else None

    # -- sending ----------------------------------------------------------------------

    def before_enqueue(self, broker, message, delay):
        if self.local.consumer:
            # A worker moving a due delayed message onto its queue: the job still waits
            # for its next attempt, which records itself when it starts.
            return
        queue = base_queue_name(message.queue_name)
        current = self.local.current
        if current is not None and not message.options.get("tenant_id"):
            # Sent by a running job without a tenant of its own (Retries' message to an
            # on_retry_exhausted actor, say): it belongs to that job's tenant.
            inherited = current.options.get("tenant_id")
            if inherited:
                message.options["tenant_id"] = inherited
        tenant = message.options.get("tenant_id") or ""
        at = now_ms(self.store.clock)
        if current is not None and current.message_id == message.message_id:
            self._retrying(message, queue, tenant, at, delay)
            return
        parent = current.message_id if current is not None else ""
        retries = message.options.get("retries", 0)
        fields = {
            "attempt": retries,
            "max_attempts": self.max_attempts(broker, message),
            "enqueued_at": at,
            "eta": message.options.get("eta"),
            "retry_of": message.options.get("retry_of"),
            "args": args_text(message),
        }
        event: dict[str, Any] = {"state": QUEUED}
        if message.options.get("eta"):
            event["eta"] = message.options["eta"]
        if fields["retry_of"]:
            event["retry_of"] = fields["retry_of"]
        self._record(
            message.message_id,
            queue,
            now=current is None,
            state=QUEUED,
            rank=rank(QUEUED, retries),
            tenant=tenant,
            fields=fields,
            identity=self._identity(message),
            event=event,
            # An explicit parent (a resumed execution's previous run job) comes first.
            parent=message.options.get("parent_job_id") or parent,
            stats=("enqueued",),
            at_ms=at,
        )

    def _retrying(self, message, queue: str, tenant: str, at: int, delay: int | None) -> None:
        """Retries re-enqueueing the message that just failed, with a delay."""
        error_type, error_message, trace = self._error_of(message)
        duration = self._duration()
        eta = message.options.get("eta")
        if eta:
            at = eta - (delay or 0)  # the moment the broker scheduled the retry
        else:
            eta = at + (delay or 0)
        attempt = self.local.attempt
        self._record(
            message.message_id,
            queue,
            state=RETRYING,
            rank=rank(RETRYING, attempt),
            tenant=tenant,
            fields={
                "error_type": error_type,
                "error_message": error_message,
                "next_retry_at": eta,
                "finished_at": at,
                "traceback": trace,
            },
            event={
                "state": RETRYING,
                "attempt": attempt,
                "duration_ms": _ms(duration),
                "next_attempt": attempt + 1,
                "next_retry_at": eta,
                "delay_ms": delay or 0,
                "error": {"type": error_type, "message": error_message},
            },
            stats=("processed", "retried"),
            duration_s=duration,
            at_ms=at,
        )

    # -- processing -------------------------------------------------------------------

    def after_consumer_thread_boot(self, broker, thread):
        self.local.consumer = True

    def before_process_message(self, broker, message):
        _active.recorder = self
        local = self.local
        local.current = message
        local.error = None
        local.progressed = False
        local.started = time.monotonic()
        attempt = local.attempt = message.options.get("retries", 0) + 1
        at = now_ms(self.store.clock)
        self._in_flight[threading.get_ident()] = message.message_id
        # Enqueue (or the retry's due time) to start.
        ready_at = message.options.get("eta") or message.message_timestamp
        self._record(
            message.message_id,
            base_queue_name(message.queue_name),
            state=RUNNING,
            rank=rank(RUNNING, attempt),
            tenant=message.options.get("tenant_id") or "",
            fields={
                "attempt": attempt,
                "max_attempts": self.max_attempts(broker, message),
                "started_at": at,
                "finished_at": "",
                "next_retry_at": "",
                "worker": self.worker_name,
            },
            identity=self._identity(message),
            event={"state": RUNNING, "attempt": attempt, "worker": self.worker_name},
            at_ms=at,
            latency_ms=max(0, at - int(ready_at)) if ready_at else None,
        )

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is not None:
            error_type, error_message = error_summary(exception)
            trace = traceback_text(exception)
            self.local.error = (message.message_id, error_type, error_message, trace)
            return
        if message.failed:
            return  # after_nack records it
        attempt = self.local.attempt
        at = now_ms(self.store.clock)
        fields: dict[str, Any] = {
            "finished_at": at,
            "result_key": self._result_key(broker, message),
        }
        if self.local.progressed:
            # A job that reported progress and succeeded is complete, whatever it said last.
            fields.update(progress=100, progress_message="done", progress_at=at)
        duration = self._duration()
        self._record(
            message.message_id,
            base_queue_name(message.queue_name),
            state=SUCCEEDED,
            rank=rank(SUCCEEDED, attempt),
            tenant=message.options.get("tenant_id") or "",
            fields=fields,
            event={"state": SUCCEEDED, "attempt": attempt, "duration_ms": _ms(duration)},
            stats=("processed", "succeeded"),
            duration_s=duration,
            at_ms=at,
        )

    def after_skip_message(self, broker, message):
        if message.failed:
            return  # after_nack records it
        attempt = message.options.get("retries", 0) + 1
        self._record(
            message.message_id,
            base_queue_name(message.queue_name),
            state=SUCCEEDED,
            rank=rank(SUCCEEDED, attempt),
            tenant=message.options.get("tenant_id") or "",
            fields={"finished_at": now_ms(self.store.clock)},
            identity=self._identity(message),
            event={"state": SUCCEEDED, "attempt": attempt, "skipped": True},
            stats=("processed", "succeeded"),
        )

    def after_nack(self, broker, message):
        current = self.local.current
        ran = current is not None and current.message_id == message.message_id
        # A message that never ran (unknown actor, skipped) failed after its last attempt.
        attempt = self.local.attempt if ran else message.options.get("retries", 0)
        error_type, error_message, trace = self._error_of(message)
        error_type = error_type or "Failed"
        duration = self._duration() if ran else None
        self._record(
            message.message_id,
            base_queue_name(message.queue_name),
            state=FAILED,
            rank=rank(FAILED, attempt),
            tenant=message.options.get("tenant_id") or "",
            fields={
                "attempt": attempt,
                "finished_at": now_ms(self.store.clock),
                "next_retry_at": "",
                "error_type": error_type,
                "error_message": error_message,
                "traceback": trace,
                # Where the dead letter is: ``<ns>:<queue>.XQ`` member.
                "broker_id": message.options.get("redis_message_id", ""),
            },
            identity=self._identity(message),
            event={
                "state": FAILED,
                "attempt": attempt,
                "duration_ms": _ms(duration),
                "error": {"type": error_type, "message": error_message},
            },
            stats=("processed", "failed") if ran else ("failed",),
            duration_s=duration,
        )
        self._done()

    def after_ack(self, broker, message):
        self._done()

    def _done(self) -> None:
        self._in_flight.pop(threading.get_ident(), None)
        self.local.current = None
        self.local.error = None
        self.local.started = 0.0

    def progress(self, message: dramatiq.Message, percent: int, text: str) -> None:
        self.local.progressed = True
        self._record(
            message.message_id,
            base_queue_name(message.queue_name),
            fields={
                "progress": max(0, min(100, int(percent))),
                "progress_message": text[:MAX_PROGRESS_MESSAGE_CHARS],
                "progress_at": now_ms(self.store.clock),
            },
            must_exist=True,
        )

    def note(self, message: dramatiq.Message, fields: dict[str, Any]) -> None:
        """Set fields on the current message's record (through the batch writer)."""
        self._record(
            message.message_id,
            base_queue_name(message.queue_name),
            fields=fields,
            must_exist=True,
        )

    def end_waiting(self, job_id: str, queue: str, ended_by: str) -> None:
        """Close a job's waiting marker (``ended_by``: the resumed job's id, or why).

        Written at once outside a message (a decision in the web process), through the
        batch writer inside one. A marker written later does not reopen it.
        """
        self._record(
            job_id,
            base_queue_name(queue),
            now=self.local.current is None,
            fields={"waiting_ended": ended_by},
            must_exist=True,
        )

    def end_execution(self, job_id: str, queue: str, status: str, reason: str) -> None:
        """Say that the execution of run job ``job_id`` was ended from outside its run
        (``status``: ``cancelled`` or ``failed``), closing any waiting marker.

        Written like :meth:`end_waiting`; the job then counts as ``status`` once its own
        state is lower (see :mod:`shared.jobstatus.store`).
        """
        self._record(
            job_id,
            base_queue_name(queue),
            now=self.local.current is None,
            fields={
                "waiting_ended": status,
                "ended": status,
                "ended_reason": reason[:MAX_ENDED_REASON_CHARS],
            },
            must_exist=True,
        )

    def rewrite_waiting(self, job_id: str, queue: str, marker: dict[str, Any]) -> None:
        """Replace the waiting marker of ``job_id`` (the people changed); a closed
        marker stays closed."""
        self._record(
            job_id,
            base_queue_name(queue),
            now=self.local.current is None,
            fields={"waiting": json.dumps(marker, separators=(",", ":"))},
            must_exist=True,
        )

    # -- worker presence --------------------------------------------------------------

    def after_worker_boot(self, broker, worker):
        self._worker_queues = sorted({base_queue_name(q) for q in worker.consumers})
        self._threads = len(getattr(worker, "workers", ())) or getattr(worker, "worker_threads", 0)
        self._started_at = self.store.clock()
        self._beat_stop.clear()
        threading.Thread(target=self._beat_loop, name="job-status-beat", daemon=True).start()

    def before_worker_shutdown(self, broker, worker):
        self._beat_stop.set()

    def after_worker_shutdown(self, broker, worker):
        self.writer.flush()
        try:
            self.store.forget_worker(self.worker_name, self._worker_queues)
            self._present(stopped=True)
        except redis.RedisError:
            logger.debug("could not unregister the worker", exc_info=True)

    def _present(self, stopped: bool = False) -> None:
        """This process's record in ``GET /workers`` (see :mod:`shared.jobstatus.workers`)."""
        self.presence.beat(
            self.worker_name,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self._worker_queues,
            threads=self._threads,
            in_flight=list(self._in_flight.copy().values()),
            started_at=self._started_at,
            version=package_version(),
            stopped=stopped,
        )

    def _beat_loop(self) -> None:
        while not self._beat_stop.is_set():
            try:
                self.store.beat(self.worker_name, self._worker_queues)
                self._present()
            except redis.RedisError as exc:
                logger.warning("Could not record worker presence: %s", exc)
            self._beat_stop.wait(WORKER_BEAT_S)


class _Active(threading.local):
    #: The middleware that recorded this thread's current message as running.
    recorder: JobStatus | None = None


_active = _Active()


def report_progress(percent: int, message: str = "") -> None:
    """Record the current message's progress (0-100) and a short message.

    A no-op outside a message or when the broker records no job status; never raises
    into the actor.
    """
    current = CurrentMessage.get_current_message()
    recorder = _active.recorder
    if current is None or recorder is None:
        return None
    recorder.progress(current, percent, message)
    return None


def _note_current(fields: dict[str, Any]) -> None:
    current = CurrentMessage.get_current_message()
    recorder = _active.recorder
    if current is None or recorder is None:
        return
    recorder.note(current, fields)


def waiting_marker(
    *,
    execution_id: str,
    approvers: list[str],
    approval_id: str | None = None,
    status: str = "waiting_approval",
) -> dict[str, Any]:
    return {
        "status": status,
        "execution_id": execution_id,
        "approval_id": approval_id,
        "approvers": list(approvers),
    }


def report_waiting(
    *,
    execution_id: str,
    approvers: list[str],
    approval_id: str | None = None,
    status: str = "waiting_approval",
) -> None:
    """Mark the current job as waiting for a person (an execution parked for them).

    Its tree state reads ``waiting``, naming ``approvers``, until :func:`end_waiting`.
    A no-op outside a message; never raises into the actor.
    """
    marker = waiting_marker(
        execution_id=execution_id, approvers=approvers, approval_id=approval_id, status=status
    )
    _note_current({"waiting": json.dumps(marker, separators=(",", ":"))})


def report_subject(**subject: Any) -> None:
    """Record what the current job is about (workflow and entity ids, names, title)."""
    values = {k: None if v is None else str(v)[:MAX_SUBJECT_CHARS] for k, v in subject.items()}
    _note_current({"subject": json.dumps(values, separators=(",", ":"))})


def end_waiting(broker: Any, job_id: str, queue: str, ended_by: str) -> None:
    """Close the waiting marker of ``job_id`` (see :meth:`JobStatus.end_waiting`).

    Does nothing when ``broker`` records no job status; never raises.
    """
    recorder = _recorder(broker)
    if recorder is not None:
        recorder.end_waiting(job_id, queue, ended_by)


def _recorder(broker: Any) -> JobStatus | None:
    return next((m for m in getattr(broker, "middleware", ()) if isinstance(m, JobStatus)), None)


def end_execution(broker: Any, job_id: str, queue: str, status: str, reason: str) -> None:
    """Record that run job ``job_id``'s execution ended from outside (see
    :meth:`JobStatus.end_execution`). Does nothing when ``broker`` records no job
    status; never raises."""
    recorder = _recorder(broker)
    if recorder is not None:
        recorder.end_execution(job_id, queue, status, reason)


def rewrite_waiting(
    broker: Any,
    job_id: str,
    queue: str,
    *,
    execution_id: str,
    approvers: list[str],
    approval_id: str | None = None,
) -> None:
    """Name who the parked job ``job_id`` waits for now (see :meth:`JobStatus.rewrite_waiting`).

    Does nothing when ``broker`` records no job status; never raises.
    """
    recorder = _recorder(broker)
    if recorder is not None:
        marker = waiting_marker(
            execution_id=execution_id, approvers=approvers, approval_id=approval_id
        )
        recorder.rewrite_waiting(job_id, queue, marker)
