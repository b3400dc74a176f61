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


def token(roles=("operator",), tenant="ops"):
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, 'op', roles, tenant)}"}


#: Platform staff: every tenant's jobs.
OPERATOR = token()


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
    resp = client.simulate_get("/queues", headers=OPERATOR)
    assert resp.status_code == 200, resp.text
    rows = {row["name"]: row for row in resp.json["items"]}
    assert len(rows) == 8
    return rows[name]


def failed_job(system, tenant="acme"):
    """A dead-lettered job of ``tenant`` (None: a job without a tenant)."""
    system.break_it()
    options = {"tenant_id": tenant} if tenant else {}
    message = system.actors.fragile.send_with_options(args=(1,), **options)
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
    detail = system.client.simulate_get(f"/jobs/{job_id}", headers=OPERATOR).json
    assert detail["dead_lettered"] is True and detail["attempt"] == 2

    # When the cause is fixed and an operator retries it
    system.fix_it()
    resp = system.client.simulate_post(f"/jobs/{job_id}/retry", headers=OPERATOR)

    # Then a new job with a fresh attempt count runs and succeeds, linked both ways
    assert resp.status_code == 202, resp.text
    new_id = resp.json["id"]
    assert resp.json["retry_of"] == job_id and resp.headers["location"] == f"/jobs/{new_id}"
    new = poll(
        lambda: (j := system.store.get(new_id)) and j["state"] == "succeeded" and j,
        message="the retry to succeed",
    )
    assert new["attempt"] == 1 and new["retry_of"] == job_id and new["tenant_id"] == "acme"
    old = system.client.simulate_get(f"/jobs/{job_id}", headers=OPERATOR).json
    assert old["retried_as"] == new_id and old["dead_lettered"] is False
    assert old["timeline"][-1]["state"] == "retried"
    assert queue_row(system.client)["dead"] == 0

    # And it cannot be retried twice
    again = system.client.simulate_post(f"/jobs/{job_id}/retry", headers=OPERATOR)
    assert again.status_code == 409 and "already retried" in again.json["description"]


def test_deleting_a_dead_job_drops_the_letter_and_the_record(system):
    system.start_worker()
    job_id = failed_job(system)

    resp = system.client.simulate_delete(f"/jobs/{job_id}", headers=OPERATOR)

    assert resp.status_code == 204
    assert system.client.simulate_get(f"/jobs/{job_id}", headers=OPERATOR).status_code == 404
    assert queue_row(system.client)["dead"] == 0
    assert system.client.simulate_delete(f"/jobs/{job_id}", headers=OPERATOR).status_code == 404


def test_only_dead_jobs_can_be_retried_or_deleted(system):
    system.start_worker()
    running = system.actors.slow.send().message_id
    poll(lambda: (system.store.raw(running) or {}).get("state") == "running")
    for method in ("simulate_delete", "simulate_post"):
        path = f"/jobs/{running}" + ("/retry" if method == "simulate_post" else "")
        resp = getattr(system.client, method)(path, headers=OPERATOR)
        assert resp.status_code == 409, resp.text
        assert "running" in resp.json["description"]
    assert system.store.get(running)["state"] == "running"


def test_ops_views_need_the_operator_or_admin_role(system):
    acme = system.actors.fragile.send_with_options(args=(1,), tenant_id="acme").message_id

    routes = (
        ("simulate_get", "/queues"),
        ("simulate_get", "/jobs"),
        ("simulate_get", f"/jobs/{acme}"),
        ("simulate_post", f"/jobs/{acme}/retry"),
        ("simulate_delete", f"/jobs/{acme}"),
    )
    for method, path in routes:
        call = getattr(system.client, method)
        assert call(path).status_code == 401, path
        # Tenant roles below admin are refused (with the acme tenant: they are refused
        # for the role, not for the tenant).
        for roles in (("viewer",), ("editor",), ("approver",), ("editor", "approver")):
            resp = call(path, headers=token(roles, tenant="acme"))
            assert resp.status_code == 403, (path, roles, resp.text)
            assert "operator" in resp.json["description"], resp.json
    assert system.store.get(acme)["state"] == "queued"

    bad = system.client.simulate_get("/jobs", params={"state": "dead"}, headers=OPERATOR)
    assert bad.status_code == 400 and "state" in bad.json["title"]
    assert system.client.simulate_get("/jobs/nope", headers=OPERATOR).status_code == 400
    long_tenant = system.client.simulate_get("/jobs", params={"tenant": "x" * 65}, headers=OPERATOR)
    assert long_tenant.status_code == 400 and long_tenant.json["description"]


def test_an_operator_sees_and_acts_on_every_tenants_jobs(system):
    # Given failed jobs of two tenants, and one of no tenant at all
    system.start_worker()
    acme = failed_job(system, "acme")
    globex, globex_other = failed_job(system, "globex"), failed_job(system, "globex")
    untenanted = failed_job(system, None)

    # Then an operator (whose token names a tenant of its own) lists them all
    resp = system.client.simulate_get("/jobs", params={"queue": QUEUE}, headers=OPERATOR)
    assert {i["id"] for i in resp.json["items"]} == {acme, globex, globex_other, untenanted}
    only = system.client.simulate_get("/jobs", params={"tenant": "globex"}, headers=OPERATOR)
    assert {i["id"] for i in only.json["items"]} == {globex, globex_other}
    detail = system.client.simulate_get(f"/jobs/{globex}", headers=OPERATOR)
    assert detail.status_code == 200 and detail.json["error"]["type"] == "ConnectionError"
    assert system.client.simulate_get(f"/jobs/{untenanted}", headers=OPERATOR).status_code == 200
    queues = system.client.simulate_get("/queues", headers=OPERATOR).json
    assert queues["tenant"] is None
    row = next(r for r in queues["items"] if r["name"] == QUEUE)
    assert (row["dead"], row["failed_kept"], len(row["workers"])) == (4, 4, 1)

    # And retries one of globex's jobs and drops another
    system.fix_it()
    retried = system.client.simulate_post(f"/jobs/{globex}/retry", headers=OPERATOR)
    assert retried.status_code == 202, retried.text
    new = poll(
        lambda: (j := system.store.get(retried.json["id"])) and j["state"] == "succeeded" and j,
        message="the retried job to succeed",
    )
    assert new["tenant_id"] == "globex"
    dropped = system.client.simulate_delete(f"/jobs/{globex_other}", headers=OPERATOR)
    assert dropped.status_code == 204
    assert system.store.get(globex_other) is None


def test_a_tenant_admin_sees_and_acts_on_only_its_own_tenants_jobs(system):
    # Given failed jobs of acme and of globex, and one of no tenant
    system.start_worker()
    acme, acme_other = failed_job(system, "acme"), failed_job(system, "acme")
    globex, globex_other = failed_job(system, "globex"), failed_job(system, "globex")
    untenanted = failed_job(system, None)
    olga = token(("admin",), tenant="acme")

    # When acme's admin lists jobs, only acme's are there, filter or not
    listed = system.client.simulate_get("/jobs", params={"queue": QUEUE}, headers=olga)
    assert listed.status_code == 200
    assert {i["id"] for i in listed.json["items"]} == {acme, acme_other}
    for tenant in ("globex", "ops"):
        other = system.client.simulate_get("/jobs", params={"tenant": tenant}, headers=olga)
        assert other.status_code == 200 and other.json == {"items": [], "next_cursor": None}
    own = system.client.simulate_get("/jobs", params={"tenant": "acme"}, headers=olga)
    assert {i["id"] for i in own.json["items"]} == {acme, acme_other}

    # Then another tenant's job (and one without a tenant) is a 404 for every action,
    # answered like an unknown job's, and nothing happens to it
    unknown = "00000000-0000-4000-8000-000000000000"
    for job_id in (globex, untenanted, unknown):
        for method, path in (
            ("simulate_get", f"/jobs/{job_id}"),
            ("simulate_post", f"/jobs/{job_id}/retry"),
            ("simulate_delete", f"/jobs/{job_id}"),
        ):
            resp = getattr(system.client, method)(path, headers=olga)
            assert resp.status_code == 404, (path, resp.text)
            assert resp.json == {
                "title": "Job not found",
                "description": f"There is no job {job_id} for your tenant.",
            }
    system.fix_it()
    for job_id in (globex, untenanted):
        kept = system.client.simulate_get(f"/jobs/{job_id}", headers=OPERATOR).json
        assert kept["state"] == "failed" and kept["dead_lettered"] is True
        assert kept["retried_as"] is None
    assert queue_row(system.client)["dead"] == 5

    # And its own tenant's jobs it reads, retries and drops
    detail = system.client.simulate_get(f"/jobs/{acme}", headers=olga)
    assert detail.status_code == 200 and detail.json["dead_lettered"] is True
    retried = system.client.simulate_post(f"/jobs/{acme}/retry", headers=olga)
    assert retried.status_code == 202, retried.text
    new_id = retried.json["id"]
    poll(
        lambda: (
            (system.client.simulate_get(f"/jobs/{new_id}", headers=olga).json or {}).get("state")
            == "succeeded"
        ),
        message="acme's retried job to succeed, visible to acme's admin",
    )
    assert system.client.simulate_delete(f"/jobs/{acme_other}", headers=olga).status_code == 204
    assert system.store.get(acme_other) is None
    assert system.client.simulate_get(f"/jobs/{globex_other}", headers=OPERATOR).status_code == 200


def test_an_admins_queue_view_counts_only_its_tenants_jobs(system):
    # Given jobs of acme and globex: two failed of acme, one failed and two waiting of globex
    system.start_worker()
    failed_job(system, "acme")
    failed_job(system, "acme")
    failed_job(system, "globex")
    system.fix_it()
    system.release.clear()
    system.actors.slow.send_with_options(tenant_id="globex")
    system.actors.slow.send_with_options(tenant_id="globex")

    # When acme's admin reads /queues
    resp = system.client.simulate_get("/queues", headers=token(("admin",), tenant="acme"))

    # Then it sees its tenant's kept records, and none of the figures counted across
    # tenants (depths, counters, workers)
    assert resp.status_code == 200, resp.text
    assert resp.json["tenant"] == "acme"
    rows = {r["name"]: r for r in resp.json["items"]}
    assert len(rows) == 8
    row = rows[QUEUE]
    assert (row["failed_kept"], row["queued"], row["running"], row["retrying"]) == (2, 0, 0, 0)
    for name in ("ready", "delayed", "in_flight", "dead", "processed", "failed", "retried"):
        assert row[name] is None, name
    assert row["workers"] is None
    assert row["keep_failed"] == queue_row(system.client)["keep_failed"]
    globex = system.client.simulate_get("/queues", headers=token(("admin",), tenant="globex"))
    globex_row = next(r for r in globex.json["items"] if r["name"] == QUEUE)
    assert globex_row["failed_kept"] == 1
    assert globex_row["queued"] + globex_row["running"] == 2
    # The operator's view counts every tenant.
    assert queue_row(system.client)["failed_kept"] == 3


def test_an_admins_listing_reads_its_tenants_index_not_a_filtered_page(system):
    # Given 3 jobs of acme and, newer than them, 60 of globex (no worker: all queued)
    acme = [system.actors.fragile.send_with_options(args=(n,), tenant_id="acme") for n in range(3)]
    for n in range(60):
        system.actors.fragile.send_with_options(args=(n,), tenant_id="globex")
    olga = token(("admin",), tenant="acme")

    # When acme's admin asks for pages of 2
    first = system.client.simulate_get("/jobs", params={"limit": 2}, headers=olga).json
    second = system.client.simulate_get(
        "/jobs", params={"limit": 2, "cursor": first["next_cursor"]}, headers=olga
    ).json

    # Then the pages are full pages of acme's jobs (not a page of everyone's, filtered)
    assert len(first["items"]) == 2 and first["next_cursor"]
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert sorted(ids) == sorted(m.message_id for m in acme)


def test_metrics_expose_queue_series_from_redis(system):
    system.start_worker()
    failed_job(system)
    system.fix_it()
    done = system.actors.fragile.send(2).message_id
    poll(lambda: (system.store.raw(done) or {}).get("state") == "succeeded")

    text = system.client.simulate_get("/metrics", headers=OPERATOR).text

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
    resp = system.client.simulate_post(f"/jobs/{job_id}/retry", headers=OPERATOR)
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
            not system.client.simulate_get(f"/jobs/{job_id}", headers=OPERATOR).json[
                "dead_lettered"
            ]
        ),
        message="the dead letter to expire",
    )

    resp = system.client.simulate_post(f"/jobs/{job_id}/retry", headers=OPERATOR)

    assert resp.status_code == 409, resp.text
    assert resp.json["title"] == "Dead letter expired"
    description = resp.json["description"]
    assert f"Job {job_id} cannot be retried: its dead letter expired." in description
    assert "dead_message_ttl" in description and "0 ms" in description
    # The record stays (retention prunes it) and can be dropped.
    assert system.store.get(job_id)["state"] == "failed"
    assert system.client.simulate_delete(f"/jobs/{job_id}", headers=OPERATOR).status_code == 204
