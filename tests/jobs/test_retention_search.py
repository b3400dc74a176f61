"""Retention per tenant with a minimum age, and the search indexes (real Redis).

Records are written through the store's one Lua script, as the middleware writes them.
"""

from __future__ import annotations

import json
import uuid

import pytest

from shared.jobstatus import InvalidSearch, JobStatusStore
from shared.jobstatus.middleware import rank

POLICY = "governance.policy"
QUEUES = (POLICY,)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def new_id() -> str:
    return str(uuid.uuid4())


def finish(store, tenant, state="succeeded", *, actor="run_execution", entity=None, error=None):
    """One job from queued to ``state``; returns its id."""
    job_id = new_id()
    identity = {"id": job_id, "queue": POLICY, "actor": actor, "tenant": tenant}
    store.transition(
        job_id,
        POLICY,
        state="queued",
        rank=rank("queued", 0),
        tenant=tenant,
        fields={"enqueued_at": int(store.clock() * 1000)},
        identity=identity,
        event={"state": "queued"},
    )
    if entity:
        subject = json.dumps({"entity_type": "policy", "entity_id": entity})
        store.transition(job_id, POLICY, fields={"subject": subject}, must_exist=True)
    fields = {}
    if error:
        fields = {"error_type": error[0], "error_message": error[1]}
    store.transition(
        job_id,
        POLICY,
        state=state,
        rank=rank(state, 1),
        tenant=tenant,
        fields=fields,
        identity=identity,
        event={"state": state},
    )
    return job_id


def test_another_tenants_burst_does_not_evict_a_callers_job(redis_client, namespace):
    store = JobStatusStore(redis_client, namespace, clock=Clock())
    # Given acme's job just succeeded
    acme_job = finish(store, "acme")
    # When globex finishes 200 jobs at once (twice the per-queue retention of 100)
    for _ in range(200):
        finish(store, "globex")
    # Then acme's job is still readable
    assert store.get(acme_job)["state"] == "succeeded"
    # and globex's own records are all younger than the minimum age, so all are kept
    assert redis_client.zcard(store.index_key(POLICY, "succeeded", "globex")) == 200


def test_counts_are_kept_per_tenant_once_records_are_older_than_the_minimum_age(
    redis_client, namespace
):
    clock = Clock()
    store = JobStatusStore(redis_client, namespace, keep_succeeded=3, min_age_s=60, clock=clock)
    old = []
    for _ in range(5):
        clock.now += 1
        old.append(finish(store, "acme"))
    other = finish(store, "globex")
    # Given five of acme's jobs within the minimum age: none is pruned
    assert all(store.get(j) for j in old)
    # When time passes the minimum age and acme finishes one more
    clock.now += 61
    newest = finish(store, "acme")
    # Then acme keeps its 3 newest; globex's single old record is not acme's to prune
    kept = [j for j in [*old, newest] if store.get(j)]
    assert kept == [*old[-2:], newest]
    assert store.get(other) is not None


def test_a_hard_cap_bounds_a_queue_whatever_the_ages(redis_client, namespace):
    clock = Clock()
    store = JobStatusStore(redis_client, namespace, max_records=50, clock=clock)
    jobs = []
    for i in range(80):
        clock.now += 0.01
        jobs.append(finish(store, f"t{i % 5}"))
    assert redis_client.zcard(store.index_key(POLICY, "succeeded")) == 50
    # the oldest went first, with their search entries
    assert store.get(jobs[0]) is None and store.get(jobs[-1]) is not None
    actor_key = store.search_key("actor", "run_execution")
    assert redis_client.zcard(actor_key) == 50


def test_search_by_entity_id_pages_through_the_tenants_jobs(redis_client, namespace):
    clock = Clock()
    store = JobStatusStore(redis_client, namespace, clock=clock)
    entity = new_id()
    mine = []
    for i in range(7):
        clock.now += 1
        mine.append(finish(store, "acme", entity=entity))
        finish(store, "acme", entity=new_id())  # another entity's job
    globex = finish(store, "globex", entity=entity)  # another tenant's, same id

    found, cursor, pages = [], None, 0
    while True:
        items, cursor = store.search(
            queues=QUEUES, tenant="acme", entity_id=entity, limit=3, cursor=cursor
        )
        found += [item["id"] for item in items]
        pages += 1
        if cursor is None:
            break
    assert found == list(reversed(mine)) and pages == 3
    # an operator's search (every tenant) finds globex's job too
    everyone, _ = store.search(queues=QUEUES, entity_id=entity, limit=50)
    assert {item["id"] for item in everyone} == {*mine, globex}


def test_search_by_error_text_actor_and_time(redis_client, namespace):
    clock = Clock()
    store = JobStatusStore(redis_client, namespace, clock=clock)
    refused = finish(store, "acme", "failed", error=("ConnectError", "Connection refused by host"))
    clock.now += 10
    timeout = finish(store, "acme", "failed", error=("ReadTimeout", "read timed out"))
    finish(store, "acme", actor="dispatch_event")

    items, _ = store.search(queues=QUEUES, tenant="acme", q="connection REFUSED")
    assert [i["id"] for i in items] == [refused]
    items, _ = store.search(queues=QUEUES, tenant="globex", q="refused")
    assert items == []
    items, _ = store.search(queues=QUEUES, tenant="acme", actor="run_execution", states=["failed"])
    assert [i["id"] for i in items] == [timeout, refused]
    since = int((clock.now - 5) * 1000)
    items, _ = store.search(queues=QUEUES, tenant="acme", states=["failed"], since_ms=since)
    assert [i["id"] for i in items] == [timeout]
    with pytest.raises(InvalidSearch):
        store.search(queues=QUEUES, q="a b")


def test_deleting_a_job_drops_its_search_entries(redis_client, namespace):
    store = JobStatusStore(redis_client, namespace, clock=Clock())
    entity = new_id()
    job = finish(store, "acme", "failed", entity=entity, error=("Boom", "exploded"))
    assert store.delete(job)
    keys = [
        store.search_key("entity", entity, "acme"),
        store.search_key("entity", entity),
        store.search_key("error", "exploded", "acme"),
        store.search_key("actor", "run_execution"),
    ]
    assert [redis_client.zcard(k) for k in keys] == [0, 0, 0, 0]
