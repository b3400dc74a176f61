"""Job status end to end: a real ``dramatiq`` worker process, real Redis, and the ops API.

One worker process serves the module (starting one costs about a second); each test
uses its own queue, so retention limits of one test do not touch another's records.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from types import SimpleNamespace

import dramatiq
import falcon
import pytest
import redis as redis_lib
from dramatiq.results import Results
from falcon import testing
from prometheus_client import CollectorRegistry

from shared.auth import AuthMiddleware, TokenDecoder, issue_token
from shared.broker import create_broker
from shared.http import ApiDocs, install_error_handling
from shared.jobstatus import JobStatusStore
from shared.queues import spec_for
from shared.settings import CommonSettings
from tests.conftest import JWT_SECRET
from tests.support import ServiceProcess, poll, python_module
from workflow_service.ops import register_ops

SCALE = 0.05  # retry delays: governance.policy 100 ms, 200 ms; notification 50 ms
KEEP_SUCCEEDED, KEEP_FAILED = 3, 2
#: Platform staff: every tenant's jobs.
OPERATOR = {"Authorization": f"Bearer {issue_token(JWT_SECRET, 'op', ['operator'], 'ops')}"}


@pytest.fixture(scope="module")
def system(redis_url, tmp_path_factory):
    namespace = f"t-{uuid.uuid4().hex[:12]}"
    env = {
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": namespace,
        "JWT_SECRET": JWT_SECRET,
        "RETRY_DELAY_SCALE": str(SCALE),
        "JOB_KEEP_SUCCEEDED": str(KEEP_SUCCEEDED),
        "JOB_KEEP_FAILED": str(KEEP_FAILED),
        "JOB_MIN_AGE_SECONDS": "0",
    }
    settings = CommonSettings(
        redis_url=redis_url,
        namespace=namespace,
        jwt_secret=JWT_SECRET,
        retry_delay_scale=SCALE,
        keep_succeeded=KEEP_SUCCEEDED,
        keep_failed=KEEP_FAILED,
        job_min_age_s=0,
    )
    # The sending side: the same broker setup as the api, actors declared by name only.
    broker = create_broker(settings)
    store = JobStatusStore(broker.client, namespace)
    worker = ServiceProcess(
        "worker",
        python_module("dramatiq", "tests.jobs.worker_actors", "--processes", "1", "--threads", "4"),
        env,
        tmp_path_factory.mktemp("logs"),
    ).start()
    poll(
        lambda: (
            store.workers_seen("governance.policy")
            or (worker.alive() or pytest.fail(f"worker exited:\n{worker.log()[-3000:]}"))
        ),
        timeout=30,
        message="the worker to start",
    )

    app = falcon.App(middleware=[AuthMiddleware(TokenDecoder(JWT_SECRET))])
    install_error_handling(app)
    deps = SimpleNamespace(redis=broker.client, broker=broker, registry=CollectorRegistry())
    register_ops(app, ApiDocs("ops", "1"), SimpleNamespace(settings=settings, deps=deps))

    yield SimpleNamespace(
        broker=broker,
        store=store,
        worker=worker,
        namespace=namespace,
        ops=testing.TestClient(app),
        redis=broker.client,
    )
    worker.stop()
    broker.close()
    client = redis_lib.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
    if keys:
        client.delete(*keys)


def send(system, queue, actor, *args, **options):
    message = dramatiq.Message(
        queue_name=queue, actor_name=actor, args=args, kwargs={}, options=options
    )
    return system.broker.enqueue(message).message_id


def wait_state(system, job_id, state, timeout=20.0):
    def check():
        record = system.store.get(job_id)
        return record if record and record["state"] == state else None

    return poll(check, timeout=timeout, message=f"job {job_id} to be {state}")


def ms(iso):
    return datetime.fromisoformat(iso).timestamp() * 1000


def test_a_job_failing_twice_then_succeeding_moves_through_the_exact_states(system):
    job_id = send(system, "governance.policy", "flaky", "twice", 2, tenant_id="acme")

    record = wait_state(system, job_id, "succeeded")

    timeline = record["timeline"]
    assert [(e["state"], e.get("attempt")) for e in timeline] == [
        ("queued", None),
        ("running", 1),
        ("retrying", 1),
        ("running", 2),
        ("retrying", 2),
        ("running", 3),
        ("succeeded", 3),
    ]
    spec = spec_for("governance.policy")
    for retry_number, entry in ((1, timeline[2]), (2, timeline[4])):
        expected = spec.retry_delay_ms(retry_number, SCALE)  # 100 ms, then 200 ms
        assert entry["delay_ms"] == expected
        assert entry["next_attempt"] == retry_number + 1
        assert entry["error"] == {"type": "RuntimeError", "message": f"failure {retry_number} of 2"}
        # The promised time is the failure time plus the catalog's delay...
        assert ms(entry["next_retry_at"]) - ms(entry["at"]) == expected
    # ...and the next attempt starts at that time, not before and not much later.
    for waiting, running in ((timeline[2], timeline[3]), (timeline[4], timeline[5])):
        late = ms(running["at"]) - ms(waiting["next_retry_at"])
        # (a worker checks due retries every 10 ms; a loaded test machine adds its lag)
        assert -2 <= late <= 500, late
    assert record["attempt"] == 3 and record["max_attempts"] == 5
    assert record["next_retry_at"] is None and record["error"]["type"] == "RuntimeError"
    # The record shows the result's value from Dramatiq's Results backend, never the
    # backend's Redis key.
    results = next(m for m in system.broker.middleware if isinstance(m, Results))
    message = dramatiq.Message(
        queue_name="governance.policy",
        actor_name="flaky",
        args=(),
        kwargs={},
        options={},
        message_id=job_id,
    )
    assert record["result"] == {"available": True, "value": "succeeded on run 3"}
    assert results.backend.build_message_key(message) not in json.dumps(record)
    assert results.backend.get_result(message) == "succeeded on run 3"


def test_an_exhausted_job_is_failed_dead_lettered_and_retried_from_the_api(system):
    spec = spec_for("governance.notification")
    job_id = send(system, "governance.notification", "deliver", "hook", tenant_id="acme")

    record = wait_state(system, job_id, "failed")

    assert record["attempt"] == spec.attempts == 10
    assert [e["state"] for e in record["timeline"]].count("retrying") == spec.attempts - 1
    assert record["error"] == {"type": "ConnectionError", "message": "destination hook is down"}
    detail = system.ops.simulate_get(f"/jobs/{job_id}", headers=OPERATOR).json
    assert detail["dead_lettered"] is True

    def dead_notifications():
        items = system.ops.simulate_get("/queues", headers=OPERATOR).json["items"]
        return {q["name"]: q for q in items}["governance.notification"]["dead"]

    # (the record turns failed a moment before the worker moves the message to the XQ)
    poll(lambda: dead_notifications() == 1, message="the dead letter")

    # When the destination is back and an operator retries the dead job
    system.redis.set(f"{system.namespace}:test:hook:up", 1)
    resp = system.ops.simulate_post(f"/jobs/{job_id}/retry", headers=OPERATOR)

    # Then it runs again as a new job, with a fresh attempt count, and succeeds
    assert resp.status_code == 202, resp.text
    retried = wait_state(system, resp.json["id"], "succeeded")
    assert retried["attempt"] == 1 and retried["retry_of"] == job_id
    assert system.store.get(job_id)["retried_as"] == retried["id"]
    assert dead_notifications() == 0


def test_retention_keeps_the_configured_numbers_and_never_a_running_job(system):
    held = send(system, "governance.export", "export", "held", False, True)
    wait_state(system, held, "running")
    # Progress is visible while the job runs (reported a moment after it starts).
    record = poll(
        lambda: (r := system.store.get(held)) and (r.get("progress") or {}).get("percent") and r,
        message="progress of the held job",
    )
    assert record["state"] == "running"
    assert record["progress"]["percent"] == 50
    assert record["progress"]["message"] == "halfway through held"

    succeeded = [send(system, "governance.export", "export", f"ok{n}") for n in range(6)]
    failed = [send(system, "governance.export", "export", f"bad{n}", True) for n in range(4)]
    # (Waiting on the jobs' own records would be a race: the oldest to finish are pruned.)
    poll(
        lambda: (
            system.store.stats("governance.export").get("failed", 0) == 4
            and system.store.stats("governance.export").get("succeeded", 0) == 6
        ),
        message="every export to finish",
    )

    counts = system.store.counts("governance.export")
    assert counts["succeeded"] == KEEP_SUCCEEDED and counts["failed"] == KEEP_FAILED
    kept = [j for j in succeeded + failed if system.store.raw(j)]
    assert len(kept) == KEEP_SUCCEEDED + KEEP_FAILED
    # The dead-letter queue keeps what the failed records keep.
    dead = f"{system.namespace}:governance.export.XQ"
    poll(lambda: system.redis.zcard(dead) == KEEP_FAILED, message="the kept dead letters")
    # The running job outlived all of that.
    assert system.store.get(held)["state"] == "running"

    system.redis.rpush(f"{system.namespace}:test:held:release", 1)
    done = wait_state(system, held, "succeeded")
    assert done["progress"]["percent"] == 100
    assert system.store.counts("governance.export")["succeeded"] == KEEP_SUCCEEDED
