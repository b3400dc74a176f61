"""The job-status middleware against real Redis, with Dramatiq's Worker in-process.

The same behaviour is checked end to end with real worker processes in
``test_lifecycle.py``; here the failures are precise and the tests fast.
"""

from __future__ import annotations

import json
import threading

import dramatiq
import pytest
from dramatiq import Worker

from shared.broker import actor_options, create_broker
from shared.jobstatus import JobStatusStore, report_progress
from shared.jobstatus.store import coalesce
from shared.queues import spec_for
from shared.settings import CommonSettings
from tests.support import poll

QUEUE = "governance.policy"
SCALE = 0.05  # exponential from 2 s becomes 100 ms, 200 ms, ...


@pytest.fixture
def keep():
    """(keep_succeeded, keep_failed); None keeps the catalog's retention."""
    return (None, None)


@pytest.fixture
def settings(redis_url, namespace, keep):
    return CommonSettings(
        redis_url=redis_url,
        namespace=namespace,
        retry_delay_scale=SCALE,
        keep_succeeded=keep[0],
        keep_failed=keep[1],
        job_min_age_s=0,
    )


@pytest.fixture
def broker(settings):
    broker = create_broker(settings)
    yield broker
    broker.close()


@pytest.fixture
def store(broker, settings):
    return JobStatusStore(broker.client, settings.namespace)


@pytest.fixture
def worker(broker):
    started = []

    def start():
        w = Worker(broker, worker_threads=4, worker_timeout=100)
        w.start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def states(store, job_id):
    return [(e["state"], e.get("attempt")) for e in store.get(job_id)["timeline"]]


def test_a_job_that_fails_twice_then_succeeds(broker, store, worker):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) <= 2:
            raise ValueError(f"boom {len(calls)}")
        return "ok"

    actor = dramatiq.actor(
        flaky, broker=broker, actor_name="flaky", store_results=True, **actor_options(QUEUE)
    )
    message = actor.send_with_options(args=(), tenant_id="acme")
    worker()

    record = poll(
        lambda: (r := store.get(message.message_id)) and r["state"] == "succeeded" and r,
        message="job to succeed",
    )

    assert states(store, message.message_id) == [
        ("queued", None),
        ("running", 1),
        ("retrying", 1),
        ("running", 2),
        ("retrying", 2),
        ("running", 3),
        ("succeeded", 3),
    ]
    timeline = record["timeline"]
    spec = spec_for(QUEUE)
    assert [e["delay_ms"] for e in timeline if e["state"] == "retrying"] == [
        spec.retry_delay_ms(1, SCALE),
        spec.retry_delay_ms(2, SCALE),
    ]
    assert timeline[2]["error"] == {"type": "ValueError", "message": "boom 1"}
    # The next attempt starts at (not before) the promised time (ISO strings of one
    # format and zone compare in time order).
    assert timeline[3]["at"] >= timeline[2]["next_retry_at"]
    assert timeline[5]["at"] >= timeline[4]["next_retry_at"]
    assert record["attempt"] == 3 and record["max_attempts"] == spec.attempts
    assert record["tenant_id"] == "acme"
    # The result's value, not where it lives in Redis.
    assert record["result"] == {"available": True, "value": "ok"}
    assert f"{broker.namespace}:" not in json.dumps(record)
    # The last error stays on the record after a later attempt succeeds.
    assert record["error"] == {"type": "ValueError", "message": "boom 2"}
    assert (
        actor.message()
        .copy(message_id=message.message_id)
        .get_result(backend=next(m.backend for m in broker.middleware if hasattr(m, "backend")))
        == "ok"
    )


def test_exhausted_retries_fail_and_dead_letter(broker, store, worker, namespace):
    def always():
        raise RuntimeError("nope")

    actor = dramatiq.actor(
        always, broker=broker, actor_name="always", **{**actor_options(QUEUE), "max_retries": 1}
    )
    message = actor.send()
    worker()
    record = poll(lambda: (r := store.get(message.message_id)) and r["state"] == "failed" and r)
    assert record["attempt"] == 2 and record["max_attempts"] == 2
    assert record["error"] == {"type": "RuntimeError", "message": "nope"}
    raw = store.raw(message.message_id)
    assert broker.client.zscore(f"{namespace}:{QUEUE}.XQ", raw["broker_id"]) is not None


def test_the_retry_exhausted_job_belongs_to_the_failed_jobs_tenant(broker, store, worker):
    # Retries sends the on_retry_exhausted message without options of its own
    def always():
        raise RuntimeError("nope")

    def gave_up(message_data, retry_info):
        pass

    dramatiq.actor(gave_up, broker=broker, actor_name="gave_up", **actor_options(QUEUE))
    actor = dramatiq.actor(
        always,
        broker=broker,
        actor_name="always_exhausted",
        on_retry_exhausted="gave_up",
        **{**actor_options(QUEUE), "max_retries": 0},
    )
    message = actor.send_with_options(tenant_id="acme")
    worker()
    children = poll(
        lambda: (r := store.get(message.message_id)) and r["children"]["items"],
        message="the on_retry_exhausted job, as a child of the failed one",
    )
    [child] = children
    assert child["actor"] == "gave_up"
    record = store.get(child["id"])
    assert record["tenant_id"] == "acme" and record["parent"] == message.message_id


def test_parent_children_and_progress(broker, store, worker):
    release = threading.Event()

    def child(n):
        report_progress(40, f"step 2 of 5 ({n})")
        release.wait(10)

    child_actor = dramatiq.actor(child, broker=broker, actor_name="child", **actor_options(QUEUE))

    def parent():
        for n in range(3):
            child_actor.send(n)

    parent_actor = dramatiq.actor(
        parent, broker=broker, actor_name="parent", **actor_options(QUEUE)
    )
    message = parent_actor.send()
    worker()

    def children_running():
        record = store.get(message.message_id)
        return record["children"]["by_state"].get("running") == 3 and record

    record = poll(children_running, message="three running children")
    for item in record["children"]["items"]:
        child_record = store.get(item["id"])
        assert child_record["parent"] == message.message_id
        assert child_record["progress"]["percent"] == 40
        assert child_record["progress"]["message"].startswith("step 2 of 5")
    release.set()
    poll(lambda: store.get(message.message_id)["children"]["by_state"] == {"succeeded": 3})


@pytest.mark.parametrize("keep", [(3, 2)])
def test_retention_keeps_the_configured_numbers_and_never_a_running_job(
    broker, store, worker, namespace
):
    release = threading.Event()

    def slow():
        release.wait(10)

    def quick(fail):
        if fail:
            raise KeyError("x")

    slow_actor = dramatiq.actor(slow, broker=broker, actor_name="slow", **actor_options(QUEUE))
    quick_actor = dramatiq.actor(
        quick, broker=broker, actor_name="quick", **{**actor_options(QUEUE), "max_retries": 0}
    )
    running = slow_actor.send()
    worker()
    poll(lambda: store.get(running.message_id)["state"] == "running")
    sent = [quick_actor.send(i % 2 == 1) for i in range(10)]
    poll(lambda: store.stats(QUEUE).get("processed", 0) >= 10, message="ten processed")
    counts = store.counts(QUEUE)
    assert counts["succeeded"] == 3 and counts["failed"] == 2
    assert store.get(running.message_id)["state"] == "running"
    kept = {m.message_id for m in sent if store.raw(m.message_id)}
    assert len(kept) == 5
    # The dead-letter set keeps what the failed records keep.
    poll(lambda: broker.client.zcard(f"{namespace}:{QUEUE}.XQ") == 2, message="two dead letters")
    release.set()


def test_listing_is_tenant_scoped_and_paginates(broker, store):
    def noop():
        pass

    actor = dramatiq.actor(noop, broker=broker, actor_name="noop", **actor_options(QUEUE))
    acme = [actor.send_with_options(tenant_id="acme").message_id for _ in range(7)]
    other = actor.send_with_options(tenant_id="globex").message_id

    seen, cursor = [], None
    while True:
        items, cursor = store.list_jobs(queues=[QUEUE], tenant="acme", limit=3, cursor=cursor)
        seen.extend(i["id"] for i in items)
        if cursor is None:
            break
    assert sorted(seen) == sorted(acme) and len(seen) == 7
    assert other not in seen
    items, _ = store.list_jobs(queues=[QUEUE], states=["queued"], tenant="globex")
    assert [i["id"] for i in items] == [other]


def test_a_jobs_tenant_never_changes_once_recorded(store):
    # Given a job of acme, queued
    store.transition("job-t", QUEUE, state="queued", tenant="acme", fields={"id": "job-t"})

    # When later changes name no tenant, or another one
    store.transition("job-t", QUEUE, state="running", rank=11, tenant="")
    store.transition("job-t", QUEUE, state="failed", rank=13, tenant="globex")

    # Then the job stays acme's, in acme's index only
    assert store.get("job-t")["tenant_id"] == "acme"
    acme, _ = store.list_jobs(queues=[QUEUE], tenant="acme")
    assert [(i["id"], i["state"]) for i in acme] == [("job-t", "failed")]
    assert store.list_jobs(queues=[QUEUE], tenant="globex") == ([], None)
    assert store.tenant_counts([QUEUE], "acme")[QUEUE]["failed"] == 1
    assert store.tenant_counts([QUEUE], "globex")[QUEUE]["failed"] == 0


def test_a_job_without_a_tenant_is_in_no_tenants_index(store):
    store.transition("job-n", QUEUE, state="failed", rank=13, fields={"id": "job-n"})
    items, _ = store.list_jobs(queues=[QUEUE])
    assert [i["id"] for i in items] == ["job-n"] and items[0]["tenant_id"] is None
    assert store.tenant_counts([QUEUE], "acme")[QUEUE]["failed"] == 0


def test_pages_never_repeat_or_skip_records_that_share_a_timestamp(store):
    # Given ten records, seven of them entering their state in the same millisecond
    ids = [f"job-{n:02d}" for n in range(10)]
    for n, job_id in enumerate(ids):
        store.transition(
            job_id, QUEUE, state="queued", fields={"id": job_id}, at_ms=1000 if n < 7 else n
        )

    # When they are read three at a time
    seen, cursor = [], None
    while True:
        items, cursor = store.list_jobs(queues=[QUEUE], limit=3, cursor=cursor)
        seen.extend(i["id"] for i in items)
        if cursor is None:
            break

    # Then each appears once, newest first
    assert seen == sorted(ids[:7], reverse=True) + ["job-09", "job-08", "job-07"]


def test_a_late_change_never_moves_a_record_back(store):
    # Given a worker's "running" that reached Redis before the sender's "queued"
    # (two processes write one job's record)
    store.transition(
        "job-1",
        QUEUE,
        state="running",
        rank=11,
        tenant="acme",
        fields={"attempt": 1, "started_at": 2000},
        event={"state": "running", "attempt": 1},
        at_ms=2000,
    )
    store.transition(
        "job-1",
        QUEUE,
        state="queued",
        rank=0,
        tenant="acme",
        fields={"attempt": 0, "enqueued_at": 1000},
        event={"state": "queued"},
        at_ms=1000,
    )

    # Then the record stays running, the late change only fills what was empty, and the
    # timeline reads in the order things happened
    record = store.get("job-1")
    assert record["state"] == "running" and record["attempt"] == 1
    assert record["enqueued_at"] is not None and record["started_at"] is not None
    assert [e["state"] for e in record["timeline"]] == ["queued", "running"]
    assert store.counts(QUEUE)["queued"] == 0 and store.counts(QUEUE)["running"] == 1


def test_coalesced_changes_end_where_separate_ones_do(store):
    def changes(job_id):
        return [
            store.change(
                job_id,
                QUEUE,
                state="running",
                rank=11,
                tenant="acme",
                fields={"attempt": 1},
                identity={"id": job_id},
                event={"state": "running", "attempt": 1},
            ),
            store.change(job_id, QUEUE, fields={"progress": 50}, must_exist=True),
            store.change(
                job_id,
                QUEUE,
                state="succeeded",
                rank=13,
                tenant="acme",
                fields={"finished_at": 5},
                event={"state": "succeeded", "attempt": 1},
                stats=("processed", "succeeded"),
                duration_s=0.02,
            ),
        ]

    store.apply(changes("separate")[:1])
    store.apply(changes("separate")[1:2])
    store.apply(changes("separate")[2:])
    store.apply(coalesce(changes("merged")))

    def shape(job_id):
        record = store.get(job_id)
        for name in ("id", "href", "updated_at", "finished_at", "started_at"):
            record.pop(name)
        record["timeline"] = [e["state"] for e in record["timeline"]]
        return record

    assert shape("merged") == shape("separate")
    assert shape("merged")["timeline"] == ["running", "succeeded"]
    assert store.stats(QUEUE)["processed"] == 2 and store.stats(QUEUE)["le:0.025"] == 2
