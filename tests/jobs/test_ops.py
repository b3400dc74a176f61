"""The workflow service's operations views: /queues, ops /jobs, retry and delete of dead
jobs, and the queue series on /metrics; real Redis, Dramatiq's Worker in-process."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import dramatiq
import falcon
import peewee
import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import MAINTENANCE_SCALE
from falcon import testing
from prometheus_client import CollectorRegistry

from shared.auth import AuthMiddleware, TokenDecoder, issue_token
from shared.broker import actor_options, create_broker
from shared.http import ApiDocs, add_standard_routes, install_error_handling
from shared.jobstatus import JobStatusStore
from shared.settings import CommonSettings
from tests.conftest import JWT_SECRET
from tests.support import poll
from workflow_service.ops import register_ops

QUEUE = "governance.notification"


def token(roles=("admin",), tenant="ops"):
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, 'op', roles, tenant)}"}


ADMIN = token()


@pytest.fixture
def system(redis_url, namespace):
    """The ops routes on a Falcon app, a broker on the same namespace, and actors."""
    settings = CommonSettings(
        redis_url=redis_url, namespace=namespace, jwt_secret=JWT_SECRET, retry_delay_scale=0.01
    )
    broker = create_broker(settings)
    registry = CollectorRegistry()
    app = falcon.App(middleware=[AuthMiddleware(TokenDecoder(JWT_SECRET))])
    install_error_handling(app)
    docs = ApiDocs("ops", "1")
    deps = SimpleNamespace(redis=broker.client, broker=broker, registry=registry)
    register_ops(app, docs, SimpleNamespace(settings=settings, deps=deps))
    add_standard_routes(app, docs, registry=registry, checks=[])
    broken = f"{namespace}:test:broken"
    release = threading.Event()

    def fragile(n):
        if broker.client.exists(broken):
            raise ConnectionError(f"mail server down ({n})")

    def slow():
        release.wait(10)

    options = {**actor_options(QUEUE), "max_retries": 1}
    actors = SimpleNamespace(
        fragile=dramatiq.actor(fragile, broker=broker, actor_name="fragile", **options),
        slow=dramatiq.actor(slow, broker=broker, actor_name="slow", **options),
    )
    workers = []

    def start_worker():
        worker = Worker(broker, worker_threads=2, worker_timeout=100)
        worker.start()
        workers.append(worker)

    yield SimpleNamespace(
        client=testing.TestClient(app),
        broker=broker,
        actors=actors,
        namespace=namespace,
        store=JobStatusStore(broker.client, namespace),
        break_it=lambda: broker.client.set(broken, 1),
        fix_it=lambda: broker.client.delete(broken),
        release=release,
        start_worker=start_worker,
    )
    release.set()
    for worker in workers:
        worker.stop()
    broker.close()


def queue_row(client, name=QUEUE):
    resp = client.simulate_get("/queues", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    rows = {row["name"]: row for row in resp.json["items"]}
    assert len(rows) == 8
    return rows[name]


def failed_job(system, tenant="acme"):
    system.break_it()
    message = system.actors.fragile.send_with_options(args=(1,), tenant_id=tenant)
    poll(
        lambda: (system.store.raw(message.message_id) or {}).get("state") == "failed",
        message="the job to fail",
    )
    return message.message_id


def test_queues_count_ready_in_flight_delayed_and_dead(system):
    # Given two ready messages and no worker
    for n in range(2):
        system.actors.fragile.send(n)
    row = queue_row(system.client)
    assert (row["ready"], row["in_flight"], row["dead"]) == (2, 0, 0)
    assert row["workers"] == []

    # When a worker runs them (broken), one slow job holds a thread, and one job waits
    # for a retry a long way off
    system.break_it()
    system.start_worker()
    # (job records are written in the background, a moment after the dead letters)
    poll(
        lambda: (r := queue_row(system.client))["dead"] == 2 and r["failed_kept"] == 2,
        message="two dead letters and their failed records",
    )
    system.actors.slow.send()
    system.actors.fragile.send_with_options(args=(9,), delay=60_000)

    # Then the counts show it
    row = poll(
        lambda: (
            (r := queue_row(system.client))["in_flight"] == 1
            and r["delayed"] == 1
            and r["running"] == 1
            and r
        ),
        message="one in flight (running), one delayed",
    )
    assert row["ready"] == 0 and row["running"] == 1 and row["failed_kept"] == 2
    assert row["processed"] >= 4 and row["failed"] == 2 and row["retried"] == 2
    assert len(row["workers"]) == 1
    assert queue_row(system.client, "governance.policy")["dead"] == 0


def test_retrying_a_dead_job_runs_it_again_as_a_linked_job(system):
    system.start_worker()
    job_id = failed_job(system)
    detail = system.client.simulate_get(f"/jobs/{job_id}", headers=ADMIN).json
    assert detail["dead_lettered"] is True and detail["attempt"] == 2

    # When the cause is fixed and an operator retries it
    system.fix_it()
    resp = system.client.simulate_post(f"/jobs/{job_id}/retry", headers=ADMIN)

    # Then a new job with a fresh attempt count runs and succeeds, linked both ways
    assert resp.status_code == 202, resp.text
    new_id = resp.json["id"]
    assert resp.json["retry_of"] == job_id and resp.headers["location"] == f"/jobs/{new_id}"
    new = poll(
        lambda: (j := system.store.get(new_id)) and j["state"] == "succeeded" and j,
        message="the retry to succeed",
    )
    assert new["attempt"] == 1 and new["retry_of"] == job_id and new["tenant_id"] == "acme"
    old = system.client.simulate_get(f"/jobs/{job_id}", headers=ADMIN).json
    assert old["retried_as"] == new_id and old["dead_lettered"] is False
    assert old["timeline"][-1]["state"] == "retried"
    assert queue_row(system.client)["dead"] == 0

    # And it cannot be retried twice
    again = system.client.simulate_post(f"/jobs/{job_id}/retry", headers=ADMIN)
    assert again.status_code == 409 and "already retried" in again.json["description"]


def test_deleting_a_dead_job_drops_the_letter_and_the_record(system):
    system.start_worker()
    job_id = failed_job(system)

    resp = system.client.simulate_delete(f"/jobs/{job_id}", headers=ADMIN)

    assert resp.status_code == 204
    assert system.client.simulate_get(f"/jobs/{job_id}", headers=ADMIN).status_code == 404
    assert queue_row(system.client)["dead"] == 0
    assert system.client.simulate_delete(f"/jobs/{job_id}", headers=ADMIN).status_code == 404


def test_only_dead_jobs_can_be_retried_or_deleted(system):
    system.start_worker()
    running = system.actors.slow.send().message_id
    poll(lambda: (system.store.raw(running) or {}).get("state") == "running")
    for method in ("simulate_delete", "simulate_post"):
        path = f"/jobs/{running}" + ("/retry" if method == "simulate_post" else "")
        resp = getattr(system.client, method)(path, headers=ADMIN)
        assert resp.status_code == 409, resp.text
        assert "running" in resp.json["description"]
    assert system.store.get(running)["state"] == "running"


def test_ops_views_need_the_admin_role_and_span_tenants(system):
    acme = system.actors.fragile.send_with_options(args=(1,), tenant_id="acme").message_id
    globex = system.actors.fragile.send_with_options(args=(2,), tenant_id="globex").message_id

    for path in ("/queues", "/jobs", f"/jobs/{acme}"):
        assert system.client.simulate_get(path).status_code == 401
        assert system.client.simulate_get(path, headers=token(("editor",))).status_code == 403
    assert (
        system.client.simulate_post(f"/jobs/{acme}/retry", headers=token(("approver",))).status_code
        == 403
    )

    resp = system.client.simulate_get("/jobs", params={"queue": QUEUE}, headers=ADMIN)
    assert {i["id"] for i in resp.json["items"]} == {acme, globex}
    only = system.client.simulate_get("/jobs", params={"tenant": "globex"}, headers=ADMIN)
    assert [i["id"] for i in only.json["items"]] == [globex]
    bad = system.client.simulate_get("/jobs", params={"state": "dead"}, headers=ADMIN)
    assert bad.status_code == 400 and "state" in bad.json["title"]
    assert system.client.simulate_get("/jobs/nope", headers=ADMIN).status_code == 400


def test_metrics_expose_queue_series_from_redis(system):
    system.start_worker()
    failed_job(system)
    system.fix_it()
    done = system.actors.fragile.send(2).message_id
    poll(lambda: (system.store.raw(done) or {}).get("state") == "succeeded")

    text = system.client.simulate_get("/metrics").text

    q = f'queue="{QUEUE}"'
    assert "governance_queue_scrape_ok 1.0" in text
    assert f"governance_queue_dead{{{q}}} 1.0" in text
    assert f"governance_queue_depth{{{q}}} 0.0" in text
    assert f"governance_jobs_failed_total{{{q}}} 1.0" in text
    assert f"governance_jobs_retried_total{{{q}}} 1.0" in text
    assert f"governance_jobs_processed_total{{{q}}} 3.0" in text
    assert f'governance_job_duration_seconds_bucket{{le="+Inf",{q}}} 3.0' in text
    assert f"governance_job_duration_seconds_count{{{q}}} 3.0" in text
    assert 'governance_queue_in_flight{queue="governance.audit"} 0.0' in text


def test_the_ops_routes_are_in_the_openapi_document(system):
    doc = system.client.simulate_get("/openapi.json").json
    for path in ("/queues", "/jobs", "/jobs/{job_id}", "/jobs/{job_id}/retry", "/console"):
        assert path in doc["paths"], path
    retry = doc["paths"]["/jobs/{job_id}/retry"]["post"]
    assert {"202", "403", "404", "409"} <= set(retry["responses"])
    assert doc["paths"]["/console"]["get"]["security"] == []


def test_a_retried_job_gets_the_catalogs_attempts_not_those_an_outage_added(system):
    # Given a job that lost two runs to a database outage (each adds an attempt, so its
    # message allows 4 attempts) and then failed its own 2 attempts
    outage_runs = f"{system.namespace}:test:outage-runs"

    def outage_then_broken():
        if system.broker.client.incr(outage_runs) <= 2:
            raise peewee.InterfaceError("connection already closed")
        raise ConnectionError("mail server down")

    dramatiq.actor(
        outage_then_broken,
        broker=system.broker,
        actor_name="outage_then_broken",
        **{**actor_options(QUEUE), "max_retries": 1},
    )
    system.start_worker()
    job_id = system.broker.get_actor("outage_then_broken").send().message_id
    dead = poll(
        lambda: (j := system.store.get(job_id)) and j["state"] == "failed" and j,
        message="the job to fail after the outage",
    )
    assert (dead["attempt"], dead["max_attempts"]) == (4, 4)

    # When an operator retries it (still broken)
    resp = system.client.simulate_post(f"/jobs/{job_id}/retry", headers=ADMIN)
    assert resp.status_code == 202, resp.text

    # Then the new job has the actor's 2 attempts again, and fails after them
    new = poll(
        lambda: (j := system.store.get(resp.json["id"])) and j["state"] == "failed" and j,
        message="the retry to fail",
    )
    assert (new["attempt"], new["max_attempts"]) == (2, 2)
    assert int(system.broker.client.get(outage_runs)) == 6


def test_retrying_a_job_whose_dead_letter_expired_says_so(system):
    # Given a failed job whose dead letter Dramatiq deleted after dead_message_ttl (the
    # broker's maintenance on an enqueue; a ttl of 0 and every enqueue here)
    system.start_worker()
    job_id = failed_job(system)
    system.broker.dead_message_ttl = 0
    system.broker.maintenance_chance = MAINTENANCE_SCALE
    system.fix_it()
    system.actors.fragile.send(2)
    poll(
        lambda: (
            not system.client.simulate_get(f"/jobs/{job_id}", headers=ADMIN).json["dead_lettered"]
        ),
        message="the dead letter to expire",
    )

    resp = system.client.simulate_post(f"/jobs/{job_id}/retry", headers=ADMIN)

    assert resp.status_code == 409, resp.text
    assert resp.json["title"] == "Dead letter expired"
    description = resp.json["description"]
    assert f"Job {job_id} cannot be retried: its dead letter expired." in description
    assert "dead_message_ttl" in description and "0 ms" in description
    # The record stays (retention prunes it) and can be dropped.
    assert system.store.get(job_id)["state"] == "failed"
    assert system.client.simulate_delete(f"/jobs/{job_id}", headers=ADMIN).status_code == 204
