"""Queue control on real Redis with Dramatiq's Worker in-process: pause and resume a
queue, retry failed jobs in bulk behind a confirmation, clean old failed jobs, and
promote a delayed retry."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import dramatiq
import pytest
from dramatiq import Worker

from shared.broker import actor_options
from tests.jobs.test_ops import OPERATOR, QUEUE, failed_job, queue_row, token
from tests.jobs.test_ops import system as system  # noqa: F401 - the shared fixture
from tests.support import poll

ADMIN = token(roles=("admin",), tenant="acme")


@pytest.fixture
def control(system):  # noqa: F811 - the fixture imported above
    """``system`` plus a counting actor and a worker whose consumers tests can inspect."""
    client = system.broker.client
    runs = f"{system.namespace}:test:runs"
    gate = threading.Event()
    options = {**actor_options(QUEUE), "max_retries": 3}

    def counted(n):
        client.hincrby(runs, str(n), 1)

    def held(n):
        client.hincrby(runs, str(n), 1)
        gate.wait(10)

    def later(n):
        # The first attempt asks for a retry a long way off; the next one succeeds.
        if client.hincrby(runs, str(n), 1) == 1:
            raise dramatiq.Retry(delay=int(client.get(f"{system.namespace}:test:delay") or 0))

    system.actors.counted = dramatiq.actor(
        counted, broker=system.broker, actor_name="counted", **options
    )
    system.actors.held = dramatiq.actor(held, broker=system.broker, actor_name="held", **options)
    system.actors.later = dramatiq.actor(later, broker=system.broker, actor_name="later", **options)
    workers: list[Worker] = []

    def worker():
        started = Worker(system.broker, worker_threads=2, worker_timeout=100)
        started.start()
        workers.append(started)
        return started

    system.runs = lambda: {k.decode(): int(v) for k, v in client.hgetall(runs).items()}
    system.gate = gate
    system.worker = worker
    yield system
    gate.set()
    for started in workers:
        started.stop()


def consumer(worker):
    thread = worker.consumers.get(QUEUE)
    return thread.consumer if thread is not None else None


def pause(system, headers=OPERATOR, queue=QUEUE):
    return system.client.simulate_post(f"/queues/{queue}/pause", headers=headers)


def resume(system, headers=OPERATOR, queue=QUEUE):
    return system.client.simulate_post(f"/queues/{queue}/resume", headers=headers)


def test_a_paused_queue_hands_back_what_no_thread_started_and_loses_nothing(control):
    # Given two jobs holding both worker threads, two more fetched ahead of them (the
    # worker prefetches twice its threads) and two waiting in the queue
    worker = control.worker()
    for n in (0, 1):
        control.actors.held.send(n)
    poll(lambda: len(control.runs()) == 2, message="both threads busy")
    for n in range(2, 6):
        control.actors.counted.send(n)
    poll(
        lambda: (r := queue_row(control.client))["in_flight"] == 4 and r["ready"] == 2,
        message="two fetched ahead",
    )

    # When an operator pauses the queue
    resp = pause(control)
    assert resp.status_code == 200, resp.text
    assert resp.json["paused"] is True and resp.json["paused_by"] == "op"

    # Then the consumer puts the two back on the queue; the two running ones go on
    poll(lambda: consumer(worker).paused, message="the consumer to see the pause")
    row = poll(
        lambda: (r := queue_row(control.client))["ready"] == 4 and r,
        message="the fetched messages back on the queue",
    )
    assert row["paused"] is True and row["paused_by"] == "op" and row["paused_at"]
    # Messages sent while paused wait too
    control.actors.counted.send(6)
    control.gate.set()
    poll(lambda: queue_row(control.client)["in_flight"] == 0, message="in-flight work done")
    assert set(control.runs()) == {"0", "1"}
    assert queue_row(control.client)["ready"] == 5
    metrics = control.client.simulate_get("/metrics", headers=OPERATOR).text
    assert f'governance_queue_paused{{queue="{QUEUE}"}} 1.0' in metrics

    # When it is resumed, every message runs exactly once and none is dead
    resp = resume(control)
    assert resp.status_code == 200 and resp.json["paused"] is False
    poll(lambda: len(control.runs()) == 7, message="every message to run")
    assert set(control.runs().values()) == {1}
    row = queue_row(control.client)
    assert (row["dead"], row["ready"], row["paused"]) == (0, 0, False)
    assert f'governance_queue_paused{{queue="{QUEUE}"}} 0.0' in (
        control.client.simulate_get("/metrics", headers=OPERATOR).text
    )


def test_a_pause_outlasts_a_worker_restart(control):
    pause(control)
    control.actors.counted.send(1)

    # A worker started after the pause reads it before fetching anything
    worker = control.worker()
    poll(lambda: consumer(worker) is not None and consumer(worker).paused)
    assert control.runs() == {} and queue_row(control.client)["ready"] == 1

    resume(control)
    poll(lambda: control.runs() == {"1": 1}, message="the job to run after the resume")


def test_only_an_operator_pauses_a_queue_every_tenant_shares(control):
    assert pause(control, ADMIN).status_code == 403
    assert resume(control, ADMIN).status_code == 403
    assert pause(control, queue="no.such.queue").status_code == 404
    assert queue_row(control.client)["paused"] is False
    admin_rows = control.client.simulate_get("/queues", headers=ADMIN).json["items"]
    pause(control)
    admin_rows = control.client.simulate_get("/queues", headers=ADMIN).json["items"]
    row = next(r for r in admin_rows if r["name"] == QUEUE)
    assert row["paused"] is True and row["paused_by"] is None


def retry_failed(system, body, headers=OPERATOR):
    return system.client.simulate_post("/jobs/retry-failed", json=body, headers=headers)


def test_retrying_every_failed_job_matching_a_filter_needs_a_confirmed_count(control):
    control.start_worker()
    acme = [failed_job(control, "acme") for _ in range(2)]
    other = failed_job(control, "globex")
    control.fix_it()
    where = {"queue": QUEUE, "actor": "fragile", "error": "MAIL SERVER"}

    # An admin counts its own tenant's failed jobs, an operator every tenant's
    admin_count = retry_failed(control, {**where, "dry_run": True}, ADMIN)
    assert admin_count.status_code == 200, admin_count.text
    assert admin_count.json["count"] == 2
    count = retry_failed(control, {**where, "dry_run": True})
    assert count.json["count"] == 3
    nothing = retry_failed(control, {"error": "no such error", "dry_run": True})
    assert nothing.json["count"] == 0
    until = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert retry_failed(control, {"until": until, "dry_run": True}).json["count"] == 0

    # Without a confirmation, or with one for another filter, nothing is retried
    assert retry_failed(control, where).status_code == 422
    other_filter = {"queue": QUEUE, "confirmation": count.json["confirmation"]}
    assert retry_failed(control, other_filter).status_code == 409
    # (a token is single use: that attempt used it)
    assert retry_failed(control, {**where, **other_filter}).status_code == 409

    # With a fresh confirmation all three go again, each linked to its failed job
    count = retry_failed(control, {**where, "dry_run": True})
    resp = retry_failed(control, {**where, "confirmation": count.json["confirmation"]})
    assert resp.status_code == 200, resp.text
    assert (resp.json["retried"], resp.json["skipped"]) == (3, 0)
    for job_id in (*acme, other):
        new_id = control.store.raw(job_id)["retried_as"]
        poll(lambda new_id=new_id: control.store.raw(new_id).get("state") == "succeeded")
    assert queue_row(control.client)["dead"] == 0
    assert retry_failed(control, {**where, "dry_run": True}).json["count"] == 0


def test_a_confirmed_count_that_changed_retries_nothing(control):
    control.start_worker()
    failed_job(control, "acme")
    count = retry_failed(control, {"dry_run": True}, ADMIN)
    failed_job(control, "acme")

    resp = retry_failed(control, {"confirmation": count.json["confirmation"]}, ADMIN)

    assert resp.status_code == 409 and resp.json["count"] == 2
    assert queue_row(control.client)["dead"] == 2


def clean(system, before, headers=OPERATOR, state="failed"):
    body = {"state": state, "before": before.isoformat()}
    return system.client.simulate_post("/jobs/clean", json=body, headers=headers)


def test_cleaning_drops_failed_jobs_older_than_a_time_in_the_callers_scope(control):
    control.start_worker()
    acme = failed_job(control, "acme")
    other = failed_job(control, "globex")
    # A dead letter whose record retention already pruned
    orphan = failed_job(control, "globex")
    control.store.delete(orphan)

    assert clean(control, datetime.now(UTC) - timedelta(hours=1)).json == {
        "records": 0,
        "dead_letters": 0,
    }
    assert clean(control, datetime.now(UTC), state="succeeded").status_code == 422

    # An admin drops its own tenant's only
    resp = clean(control, datetime.now(UTC) + timedelta(seconds=1), ADMIN)
    assert resp.status_code == 200, resp.text
    assert resp.json == {"records": 1, "dead_letters": 0}
    assert control.store.raw(acme) is None and control.store.raw(other) is not None
    assert queue_row(control.client)["dead"] == 2

    # An operator drops every tenant's, and the dead letters without a record
    resp = clean(control, datetime.now(UTC) + timedelta(seconds=1))
    assert resp.json == {"records": 1, "dead_letters": 1}
    row = queue_row(control.client)
    assert (row["dead"], row["failed_kept"]) == (0, 0)


def test_promoting_a_delayed_retry_runs_it_now_and_once(control):
    worker = control.worker()
    control.broker.client.set(f"{control.namespace}:test:delay", 1500)
    job_id = control.actors.later.send_with_options(args=(1,), tenant_id="acme").message_id
    poll(
        lambda: (
            control.store.raw(job_id).get("state") == "retrying"
            and queue_row(control.client)["delayed"] == 1
        ),
        message="the retry waiting on its delay",
    )
    dq = worker.consumers[f"{QUEUE}.DQ"]
    poll(lambda: dq.delay_queue.qsize() == 1, message="the worker to hold the retry")

    # When an admin of its tenant promotes it, it runs now
    other_admin = token(roles=("admin",), tenant="globex")
    path = f"/jobs/{job_id}/promote"
    assert control.client.simulate_post(path, headers=other_admin).status_code == 404
    resp = control.client.simulate_post(path, headers=ADMIN)
    assert resp.status_code == 202, resp.text
    record = poll(lambda: (r := control.store.get(job_id))["state"] == "succeeded" and r)
    assert record["attempt"] == 2
    assert any(e["state"] == "promoted" for e in record["timeline"])

    # And the copy the worker held does not run again when its time comes
    poll(lambda: dq.delay_queue.qsize() == 0, message="the held retry's time to come")
    poll(lambda: queue_row(control.client)["in_flight"] == 0)
    assert control.runs() == {"1": 2}
    row = queue_row(control.client)
    assert (row["ready"], row["delayed"], row["dead"]) == (0, 0, 0)

    # Only a delayed job can be promoted
    again = control.client.simulate_post(path, headers=ADMIN)
    assert again.status_code == 409 and "succeeded" in again.json["description"]
