"""The broker factory: a RedisBroker from settings, with middleware chosen in one place.

Three changes to stock Dramatiq live here, each small and for a measured reason:

* :class:`WakingRedisBroker` publishes a one-byte wake-up on a per-queue channel with
  every enqueue (in the same round trip), and its consumer waits on that channel
  instead of sleeping through Dramatiq's growing poll backoff (up to the 1 s worker
  timeout). Idle pickup drops from tens or hundreds of milliseconds to about one round
  trip, and an idle worker sends Redis one safety-net fetch per worker timeout.
* :class:`CatalogRetries` keeps Dramatiq's Retries middleware (``max_retries``,
  ``throws``, ``retry_when``, ``on_retry_exhausted``, ``Retry(delay=...)`` all work) but
  takes the delay of an unexpected error from the queue catalog, so "fixed 1 s" means
  1 s rather than Dramatiq's jittered doubling.
* A queue can be paused (:func:`paused_key`): its consumers stop fetching, hand back
  the messages they fetched but no worker thread started, and wait; in-flight work
  finishes. Nothing is lost or dead-lettered: the messages stay in the queue (delayed
  retries that come due are moved onto it and wait there too). Each consumer reads the
  flag at most once per :data:`PAUSE_CHECK_S` and at once on a pause wake-up, never per
  message.
* A delayed message that a worker holds in memory until its eta is moved onto its
  queue by one script that first takes its body out of the delay queue
  (``move_due.lua`` of :mod:`shared.dramatiq_redis`), so an operator's promote (which
  takes the body the same way) and the worker never both send it: whoever takes the
  body sends the message. A delay queue's consumer sleeps until the earliest eta it
  holds (or a wake-up, or the worker timeout), not in short ticks, so an idle worker
  does not spin and a retry still starts within a millisecond or two of its eta.
* :class:`BrokerMaintenance` runs Dramatiq's queue maintenance (the requeue of a dead
  worker's messages) on a timer in every worker, instead of only when one Redis command
  in a thousand happens to trigger it, so a killed worker's work resumes within seconds
  of the heartbeat timeout.

Everything this module assumes about how Dramatiq lays out its queues in Redis (keys,
the dispatch script's arguments, its consumer class) comes from
:mod:`shared.dramatiq_redis`.

A database outage does not use up a message's attempts: each retry for an unreachable
database raises that message's ``max_retries`` (Dramatiq's per-message option) by one,
and these retries wait 1 to 30 seconds, for as long as the outage lasts. Otherwise a
longer outage would fail every message it touched, and the dead-letter queue keeps only
the newest failures (retention), so trigger events would be lost for good. The message
also counts these extra attempts in its ``outage_retries`` option, so whoever sends it
again as a new job (an operator's retry) can give back exactly what the outage added.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from uuid import uuid4

import dramatiq
import redis
from dramatiq.broker import MessageProxy
from dramatiq.common import current_millis, iter_queue
from dramatiq.errors import ActorNotFound, ConnectionClosed, DecodeError, Retry
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend
from dramatiq.worker import ConsumerThread

from shared.db import is_database_unavailable
from shared.dramatiq_redis import (
    SCRIPTS,
    Layout,
    RedisBroker,
    RedisConsumer,
    dead_letter_by_body,
    delay_queue_name,
    dispatch_args,
    earliest_held_eta_ms,
    is_delay_queue,
    move_due_call,
)
from shared.jobstatus import JobStatus, JobStatusStore
from shared.queues import CATALOG, spec_for
from shared.settings import CommonSettings

#: Shortest and longest wait between the retries of a message whose database is down.
OUTAGE_RETRY_DELAY_MS = (1_000, 30_000)

#: Message option: how many attempts a database outage added to the message's
#: ``max_retries`` (see :func:`without_outage_retries`).
OUTAGE_RETRIES = "outage_retries"

#: Longest wait between two maintenance rounds of a worker (see BrokerMaintenance).
MAINTENANCE_INTERVAL_MAX_S = 5.0

#: Longest time a consumer trusts the pause flag it read: a pause (or resume) whose
#: wake-up was lost still takes effect within this.
PAUSE_CHECK_S = 1.0

#: Wake-up payload sent by a pause or resume: read the queue's pause flag again now.
PAUSE_CHANGED = b"pause"

logger = logging.getLogger(__name__)


def wake_channel(namespace: str, queue_name: str) -> str:
    return f"{namespace}:wake:{queue_name}"


def paused_key(namespace: str) -> str:
    """Redis hash of the paused queues: queue name -> JSON ``{"by", "at"}``."""
    return f"{namespace}:queues:paused"


class WakingRedisBroker(RedisBroker):
    """A RedisBroker whose consumers are woken by enqueues instead of polling."""

    #: The Lua scripts of an enqueue are known to be loaded in Redis.
    _scripts_loaded = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.layout = Layout(self.namespace)
        self._move_due = self.client.register_script(SCRIPTS["move_due"])

    @property
    def consumer_class(self):
        return _WakingConsumer

    def enqueue(self, message: dramatiq.Message, *, delay: int | None = None) -> dramatiq.Message:
        """Dramatiq's enqueue, with the wake-up sent in the same round trip."""
        return self.enqueue_many([message], delay=delay)[0]

    def enqueue_many(
        self, messages: Iterable[dramatiq.Message], *, delay: int | None = None
    ) -> list[dramatiq.Message]:
        """Enqueue ``messages`` in one round trip, all of them or none.

        Their job-status records (those a sending process writes at once), the messages
        and one wake-up per queue go to Redis in one MULTI/EXEC transaction, records
        first, so no worker can start a job before its record exists. A record that
        fails to apply is logged, never a reason to fail the enqueue.
        """
        status = self._job_status()
        # The only enqueue on a consumer thread: Dramatiq's worker moving a due delayed
        # message onto its queue (its Redis id is then the delay queue's).
        moving_due = delay is None and isinstance(threading.current_thread(), ConsumerThread)
        delayed_ids: list[str] = []
        prepared = []
        records: list[dict] = []
        with status.gathered(records) if status else contextlib.nullcontext():
            for message in messages:
                delayed_ids.append(message.options.get("redis_message_id") or "")
                # Each enqueue needs its own Redis id: a retried message is enqueued again.
                message = message.copy(options={"redis_message_id": str(uuid4())})
                if delay is not None:
                    message = message.copy(
                        queue_name=delay_queue_name(message.queue_name),
                        options={"eta": current_millis() + delay},
                    )
                self.emit_before("enqueue", message, delay)
                prepared.append(message)
        if not prepared:
            return []
        for _ in range(2):
            # Once the scripts are known to be in Redis, skip redis-py's SCRIPT EXISTS
            # round trip before each transaction. A Redis that lost them (restarted)
            # answers NOSCRIPT to every call of the missing script, so no message was
            # enqueued: load them and send again.
            loaded = self._scripts_loaded
            with self.client.pipeline(transaction=True) as pipe:
                if status is not None and records:
                    status.store.apply(records, client=pipe, loaded=loaded)
                for message, delayed_id in zip(prepared, delayed_ids, strict=True):
                    if moving_due and delayed_id:
                        self._queue_move_due(pipe, message, delayed_id, loaded)
                        continue
                    args = dispatch_args(
                        self,
                        "enqueue",
                        message.queue_name,
                        message.options["redis_message_id"],
                        message.encode(),
                        maintenance=self._should_do_maintenance("enqueue"),
                    )
                    if loaded:
                        pipe.evalsha(self.scripts["dispatch"].sha, 1, self.namespace, *args)
                    else:
                        self.scripts["dispatch"](keys=[self.namespace], args=args, client=pipe)
                for queue_name in dict.fromkeys(m.queue_name for m in prepared):
                    pipe.publish(wake_channel(self.namespace, queue_name), b"1")
                replies = pipe.execute(raise_on_error=False)
            status_reply, replies = (replies[0], replies[1:]) if records else (None, replies)
            if loaded and any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
                self._scripts_loaded = False
                if not isinstance(status_reply, Exception):
                    records = []  # applied already
                continue
            if isinstance(status_reply, Exception):
                logger.warning(
                    "Could not record the status of %d job(s): %s", len(records), status_reply
                )
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            self._scripts_loaded = True
            break
        if moving_due:
            # A move that found no body sent nothing: a promote sent the message already.
            moved = replies[: len(prepared)]  # then one wake-up per queue
            for message, done in zip(prepared, moved, strict=True):
                if not done:
                    logger.info(
                        "Delayed message %s was promoted already; not sending it again",
                        message.message_id,
                    )
            prepared = [m for m, done in zip(prepared, moved, strict=True) if done]
        for message in prepared:
            self.emit_after("enqueue", message, delay)
        return prepared

    def _queue_move_due(self, pipe, message: dramatiq.Message, delayed_id: str, loaded: bool):
        new_id = message.options["redis_message_id"]
        keys, args = move_due_call(
            self.layout, message.queue_name, delayed_id, new_id, message.encode()
        )
        if loaded:
            pipe.evalsha(self._move_due.sha, len(keys), *keys, *args)
        else:
            self._move_due(keys=keys, args=args, client=pipe)

    def _should_do_maintenance(self, command: str) -> int:
        # An explicit maintenance call (see :meth:`maintain`) always does it; other
        # commands keep Dramatiq's chance.
        return 1 if command == "maintenance" else super()._should_do_maintenance(command)

    def maintain(self) -> None:
        """Run Dramatiq's queue maintenance on every declared queue now.

        Each call goes through Dramatiq's own dispatch script (``do_maintenance``, with
        maintenance forced): messages fetched by workers silent for longer than the
        heartbeat timeout go back to their queues, expired dead letters are dropped, and
        this process's heartbeat is renewed. Workers pick requeued messages up with their
        next fetch (at least once per worker timeout).
        """
        for queue_name in sorted(self.get_declared_queues() | self.get_declared_delay_queues()):
            self.do_maintenance(queue_name)

    def _job_status(self) -> JobStatus | None:
        return next((m for m in self.middleware if isinstance(m, JobStatus)), None)


class _WakingConsumer(RedisConsumer):
    """Fetches like Dramatiq's consumer, but waits for a wake-up instead of sleeping.

    It fetches when woken, when an in-flight message finished and there is room to
    prefetch, and at least once per worker timeout as a safety net (messages requeued
    from a dead worker, a wake-up lost while reconnecting).
    """

    def __init__(self, broker, queue_name, prefetch, timeout):
        super().__init__(broker, queue_name, prefetch, timeout)
        self.is_delay_queue = is_delay_queue(queue_name)
        self.room = threading.Event()
        self.channel = wake_channel(broker.namespace, queue_name)
        self.pubsub = broker.client.pubsub(ignore_subscribe_messages=True)
        try:
            self.pubsub.subscribe(self.channel)
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None
        self.must_fetch = True
        self.last_fetch = 0.0
        self.paused = False
        #: Read the pause flag before the next fetch (set by a pause wake-up).
        self.pause_stale = True
        self.pause_checked = 0.0

    def ack(self, message):
        try:
            super().ack(message)
        finally:
            self.room.set()

    def nack(self, message):
        try:
            super().nack(message)
        finally:
            self.room.set()

    def close(self):
        try:
            self.pubsub.close()
        except Exception:  # noqa: BLE001 - closing a dead connection may fail; nothing to do
            self.logger.debug("error while closing the wake-up subscription", exc_info=True)

    def __next__(self):
        try:
            while True:
                if not self.is_delay_queue and self._check_pause():
                    self._wait(True)
                    return None
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    try:
                        message = dramatiq.Message.decode(data)
                    except DecodeError:
                        self._dead_letter_undecodable(data)
                        continue
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)

                now = time.monotonic()
                due = self.must_fetch or now - self.last_fetch >= self.timeout / 1000
                room = self.prefetch - self.outstanding_message_count
                if due and room > 0:
                    self.room.clear()
                    self.must_fetch = False
                    self.last_fetch = now
                    self.message_cache = self.broker.do_fetch(self.queue_name, room) or []
                    if self.message_cache:
                        # More may be waiting behind what we took.
                        self.must_fetch = len(self.message_cache) >= room
                        continue
                self._wait(room > 0)
                return None
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None

    def _check_pause(self) -> bool:
        """Whether the queue is paused; reads Redis at most once per PAUSE_CHECK_S (or
        at once after a pause wake-up), and hands back what a pause stopped."""
        now = time.monotonic()
        if self.pause_stale or now - self.pause_checked >= PAUSE_CHECK_S:
            self.pause_stale = False
            self.pause_checked = now
            was = self.paused
            key = paused_key(self.broker.namespace)
            self.paused = bool(self.broker.client.hexists(key, self.queue_name))
            if self.paused != was:
                self.logger.info(
                    "Queue %r %s", self.queue_name, "paused" if self.paused else "resumed"
                )
                self.must_fetch = True
        if self.paused:
            self._hand_back()
        return self.paused

    def _hand_back(self) -> None:
        """Put the messages of this queue that no worker thread started back on the queue.

        They are the ones fetched ahead (this consumer's cache, and the worker's shared
        work queue, read from the consumer thread that filled it); they go back to the
        end of the queue as if never fetched. Messages already running are untouched.
        """
        held = []
        while self.message_cache:
            data = self.message_cache.pop(0)
            try:
                held.append(MessageProxy(dramatiq.Message.decode(data)))
            except DecodeError:
                self._dead_letter_undecodable(data)
        work_queue = getattr(threading.current_thread(), "work_queue", None)
        if work_queue is not None:
            taken = list(iter_queue(work_queue))
            for item in taken:
                if item.message.queue_name == self.queue_name:
                    held.append(item.message)
                else:
                    work_queue.put(item)
            for _ in taken:
                work_queue.task_done()
        if not held:
            return
        self.requeue(held)
        for message in held:
            self.queued_message_ids.discard(message.message_id)
        self.logger.info("Handed %d message(s) back to paused %r", len(held), self.queue_name)

    def _dead_letter_undecodable(self, data: bytes | None) -> None:
        """Move a body that is not a Dramatiq message to the dead-letter queue.

        Stock Dramatiq raises out of the consumer on such a body, restarts it, and the
        message returns with the next worker: a crash loop. Its Redis id is only known
        by value, so look it up among this consumer's unacknowledged ids.
        """
        self.logger.error(
            "Dead-lettering an undecodable message on %r: %.200r", self.queue_name, data
        )
        if data is not None:
            dead_letter_by_body(self.broker, self.queue_name, data)

    def _wait(self, has_room: bool) -> None:
        """Block until woken, or for one tick, without sending Redis anything.

        A tick is the worker timeout; a delay queue's ends at the earliest eta of the
        messages its worker holds, so the worker moves that one onto its queue on time.
        """
        tick_s = self.timeout / 1000
        if self.is_delay_queue:
            tick_s = min(tick_s, self._until_next_eta_s())
        if not has_room:
            # Full: wait for a worker thread to finish a message, then fetch again.
            if self.room.wait(tick_s):
                self.must_fetch = True
            return
        if self._wake_pending(tick_s):
            self.must_fetch = True
            while self._wake_pending(0):  # drain wake-ups that arrived together
                pass

    @staticmethod
    def _until_next_eta_s() -> float:
        """Seconds until the earliest eta among the delayed messages this consumer's
        worker holds in memory; infinite when it holds none."""
        eta_ms = earliest_held_eta_ms()
        if eta_ms is None:
            return float("inf")
        return max(0.0, (eta_ms - current_millis()) / 1000)

    def _wake_pending(self, timeout: float) -> bool:
        try:
            message = self.pubsub.get_message(timeout=timeout)
            if message is not None and message.get("data") == PAUSE_CHANGED:
                self.pause_stale = True
        except (OSError, ValueError):
            return False
        except redis.RedisError:
            # Only the wake-up connection broke (a proxy dropped an idle connection, a
            # client kill). Raising would make Dramatiq restart this consumer and drop
            # the delay queue's in-memory messages, so resubscribe and fetch instead:
            # if Redis itself is down, the fetch raises and the stock handling applies.
            self._resubscribe()
            return True
        return message is not None

    def _resubscribe(self) -> None:
        self.logger.warning("Wake-up subscription of %r lost; resubscribing", self.queue_name)
        self.close()
        self.pubsub = self.broker.client.pubsub(ignore_subscribe_messages=True)
        try:
            self.pubsub.subscribe(self.channel)
        except redis.RedisError:
            time.sleep(min(self.timeout, 1000) / 1000)  # retried on the next wait


def maintenance_interval_s(heartbeat_timeout_ms: int) -> float:
    """How often a worker runs the maintenance: a sixth of the heartbeat timeout, at
    most 5 s, so a dead worker's messages are back on their queue within 5 s of it."""
    return max(0.1, min(MAINTENANCE_INTERVAL_MAX_S, heartbeat_timeout_ms / 6000))


class BrokerMaintenance(Middleware):
    """Runs the broker's maintenance on a timer in every worker process.

    Stock Dramatiq requeues a dead worker's messages only from a maintenance that one
    Redis command in a thousand (``maintenance_chance``) happens to run, and only for
    the queue that command touched: on a quiet system that is minutes after the
    heartbeat timeout, or much later. A thread started at worker boot runs it for every
    queue at once, then every :func:`maintenance_interval_s`. Several workers doing so
    is safe: each step of the script is atomic, and a message is requeued once.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()

    def after_worker_boot(self, broker, worker):
        if not isinstance(broker, WakingRedisBroker):
            return
        self._stop.clear()
        interval = maintenance_interval_s(broker.heartbeat_timeout)
        threading.Thread(
            target=self._loop, args=(broker, interval), name="broker-maintenance", daemon=True
        ).start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()

    def _loop(self, broker: WakingRedisBroker, interval: float) -> None:
        while True:
            try:
                broker.maintain()
            except redis.RedisError as exc:
                logger.warning("Broker maintenance failed: %s", exc)
            if self._stop.wait(interval):
                return


class CatalogRetries(Retries):
    """Dramatiq's Retries, with delays from the queue catalog instead of jitter."""

    def __init__(self, *, delay_scale: float = 1.0):
        super().__init__(max_retries=0)
        self.delay_scale = delay_scale

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if isinstance(exception, ActorNotFound) or (
            exception is not None and message.actor_name not in broker.actors
        ):
            # Nothing can run it, now or later: dead-letter it instead of failing here.
            message.fail()
            return None
        if exception is not None and not isinstance(exception, Retry):
            actor = broker.get_actor(message.actor_name)
            throws = message.options.get("throws") or actor.options.get("throws")
            queue = CATALOG.get(actor.queue_name)
            if queue is not None and not (throws and isinstance(exception, throws)):
                retry = message.options.get("retries", 0) + 1
                delay = queue.retry_delay_ms(retry, self.delay_scale)
                if is_database_unavailable(exception):
                    # Not the message's fault: one more attempt for this one, so it still
                    # has the catalog's attempts for errors of its own afterwards.
                    allowed = message.options.get(
                        "max_retries", actor.options.get("max_retries", self.max_retries)
                    )
                    message.options["max_retries"] = allowed + 1
                    message.options[OUTAGE_RETRIES] = message.options.get(OUTAGE_RETRIES, 0) + 1
                    shortest, longest = (int(d * self.delay_scale) for d in OUTAGE_RETRY_DELAY_MS)
                    delay = min(max(delay, shortest), longest)
                wrapped = Retry(f"{type(exception).__name__}: {exception}", delay=delay)
                wrapped.__cause__ = exception
                exception = wrapped
        return super().after_process_message(broker, message, result=result, exception=exception)


def without_outage_retries(options: dict) -> dict:
    """``options`` of a message without the attempts a database outage added to it.

    For sending a message again as a new job: it starts with the limit it was first
    sent with (the actor's, from the catalog, unless the sender set its own).
    """
    options = dict(options)
    added = int(options.pop(OUTAGE_RETRIES, 0) or 0)
    if added and "max_retries" in options:
        options["max_retries"] = max(int(options["max_retries"]) - added, 0)
    return options


def actor_options(queue_name: str) -> dict:
    """Retry count and time limit an actor on ``queue_name`` takes from the catalog."""
    spec = spec_for(queue_name)
    return {
        "queue_name": spec.name,
        "max_retries": spec.max_retries,
        "time_limit": spec.time_limit_ms,
    }


def job_status_middleware(settings: CommonSettings, client: redis.Redis) -> JobStatus:
    store = JobStatusStore(
        client,
        settings.namespace,
        keep_succeeded=settings.keep_succeeded,
        keep_failed=settings.keep_failed,
        min_age_s=settings.job_min_age_s,
        max_records=settings.job_max_records,
    )
    return JobStatus(store)


def build_middleware(settings: CommonSettings, client: redis.Redis) -> list[Middleware]:
    """Every process that sends or runs messages uses this same list."""
    return [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        CatalogRetries(delay_scale=settings.retry_delay_scale),
        CurrentMessage(),
        Results(
            backend=RedisBackend(
                client=client,
                namespace=f"{settings.namespace}-results",
                # Keys under the namespace, like every other key the system writes.
                use_namespace_prefix_keys=True,
            )
        ),
        # After Retries, CurrentMessage and Results: see JobStatus for why.
        *([job_status_middleware(settings, client)] if settings.job_status else []),
        # Acts in worker processes only (from worker boot).
        BrokerMaintenance(),
    ]


def create_broker(
    settings: CommonSettings,
    *,
    extra_middleware: Iterable[Middleware] = (),
    heartbeat_timeout_ms: int | None = None,
) -> WakingRedisBroker:
    """A broker for ``settings``; declares every catalog queue so ops views see them all."""
    client = redis.Redis.from_url(settings.redis_url, health_check_interval=30)
    broker = WakingRedisBroker(
        client=client,
        namespace=settings.namespace,
        middleware=[*build_middleware(settings, client), *extra_middleware],
        **({"heartbeat_timeout": heartbeat_timeout_ms} if heartbeat_timeout_ms else {}),
    )
    for name in CATALOG:
        broker.declare_queue(name)
    return broker
