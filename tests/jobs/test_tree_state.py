"""Tree state: a job's status rolled up from everything it started (real Redis).

The records are written through the store's one Lua script, as the middleware writes
them, for a tree shaped like a write's: dispatch -> run_execution -> webhook delivery.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid

import pytest

from shared.jobstatus import JobStatus, JobStatusStore
from shared.jobstatus.middleware import rank

POLICY = "governance.policy"
NOTIFY = "governance.notification"
TENANT = "acme"


@pytest.fixture
def store(redis_client, namespace):
    return JobStatusStore(redis_client, namespace)


def new_id() -> str:
    return str(uuid.uuid4())


def move(store, job_id, queue, state, *, attempt=1, parent="", actor="a", fields=None):
    store.transition(
        job_id,
        queue,
        state=state,
        rank=rank(state, 0 if state == "queued" else attempt),
        tenant=TENANT,
        fields=fields,
        identity={"id": job_id, "queue": queue, "actor": actor, "tenant": TENANT},
        event={"state": state},
        parent=parent,
    )


def note(store, job_id, queue, fields):
    store.transition(job_id, queue, fields=fields, must_exist=True)


def tree(store, job_id):
    record = store.get(job_id)
    return record["tree_state"], record["tree_cause"]


@pytest.fixture
def write_tree(store):
    """A dispatch job that succeeded, its run job that succeeded after parking for
    bob and carol, nothing below yet."""
    dispatch, run = new_id(), new_id()
    move(store, dispatch, POLICY, "queued", actor="dispatch_event")
    move(store, dispatch, POLICY, "running", actor="dispatch_event")
    move(store, run, POLICY, "queued", parent=dispatch, actor="run_execution")
    move(store, dispatch, POLICY, "succeeded", actor="dispatch_event")
    move(store, run, POLICY, "running", actor="run_execution")
    return dispatch, run


def test_a_job_is_succeeded_only_when_everything_below_it_is(store, write_tree):
    dispatch, run = write_tree
    # Given the dispatch job succeeded while its run job still runs
    assert store.get(dispatch)["state"] == "succeeded"
    state, cause = tree(store, dispatch)
    assert state == "running"
    assert cause["job_id"] == run and cause["actor"] == "run_execution"
    # When the run job succeeds, the whole tree has
    move(store, run, POLICY, "succeeded", actor="run_execution")
    assert tree(store, dispatch) == ("succeeded", None)
    assert store.get(dispatch)["children"]["items"][0]["tree_state"] == "succeeded"


def test_waiting_for_a_person_names_them_until_the_execution_resumes(store, write_tree):
    dispatch, run = write_tree
    execution = new_id()
    marker = {
        "status": "waiting_approval",
        "execution_id": execution,
        "approval_id": "ap1",
        "approvers": ["bob", "carol"],
    }
    # Given the run job parked its execution for bob and carol, then succeeded
    note(store, run, POLICY, {"waiting": json.dumps(marker)})
    move(store, run, POLICY, "succeeded", actor="run_execution")
    # Then the write's job waits, naming them
    state, cause = tree(store, dispatch)
    assert state == "waiting"
    assert cause["job_id"] == run
    assert cause["waiting"] == marker
    assert store.get(run)["waiting"] == marker
    # When the decision resumes the execution as a new run job below the parked one
    resumed = new_id()
    move(store, resumed, POLICY, "queued", parent=run, actor="run_execution")
    note(store, run, POLICY, {"waiting_ended": resumed})
    assert store.get(run)["waiting"] is None
    assert tree(store, dispatch)[0] == "queued"
    move(store, resumed, POLICY, "running", actor="run_execution")
    move(store, resumed, POLICY, "succeeded", actor="run_execution")
    assert tree(store, dispatch) == ("succeeded", None)


def test_a_marker_written_after_its_end_does_not_reopen_it(store, write_tree):
    dispatch, run = write_tree
    # The decision's write can reach Redis before the worker's batched marker.
    note(store, run, POLICY, {"waiting_ended": "cancelled"})
    note(store, run, POLICY, {"waiting": json.dumps({"approvers": ["bob"]})})
    move(store, run, POLICY, "succeeded", actor="run_execution")
    assert tree(store, dispatch)[0] == "succeeded"


def test_a_failure_two_levels_down_fails_the_write_naming_the_job(store, write_tree):
    dispatch, run = write_tree
    hook = new_id()
    move(store, hook, NOTIFY, "queued", parent=run, actor="deliver")
    move(store, run, POLICY, "succeeded", actor="run_execution")
    move(store, hook, NOTIFY, "running", actor="deliver")
    move(
        store,
        hook,
        NOTIFY,
        "retrying",
        actor="deliver",
        fields={"error_type": "WebhookFailed", "error_message": "HTTP 500"},
    )
    state, cause = tree(store, dispatch)
    assert state == "retrying" and cause["job_id"] == hook
    move(store, hook, NOTIFY, "failed", attempt=10, actor="deliver")
    state, cause = tree(store, dispatch)
    assert state == "failed"
    assert cause["job_id"] == hook and cause["href"] == f"/jobs/{hook}"
    assert cause["actor"] == "deliver"
    assert cause["error"] == {"type": "WebhookFailed", "message": "HTTP 500"}
    assert tree(store, run)[0] == "failed"
    # Failed beats a sibling that waits.
    other = new_id()
    move(store, other, POLICY, "queued", parent=dispatch, actor="run_execution")
    note(store, other, POLICY, {"waiting": json.dumps({"approvers": ["bob"]})})
    assert tree(store, dispatch)[0] == "failed"


def test_an_operator_retry_that_succeeds_clears_the_failure(store, write_tree):
    dispatch, run = write_tree
    hook, again = new_id(), new_id()
    move(store, hook, NOTIFY, "queued", parent=run, actor="deliver")
    move(store, run, POLICY, "succeeded", actor="run_execution")
    move(store, hook, NOTIFY, "failed", actor="deliver", fields={"error_type": "E"})
    assert tree(store, dispatch)[0] == "failed"
    # The retry is a sibling of the failed job; the failed job is marked retried.
    move(store, again, NOTIFY, "queued", parent=run, actor="deliver")
    note(store, hook, NOTIFY, {"retried_as": again})
    assert tree(store, dispatch)[0] == "queued"
    move(store, again, NOTIFY, "running", actor="deliver")
    move(store, again, NOTIFY, "succeeded", actor="deliver")
    assert tree(store, dispatch) == ("succeeded", None)


def test_dropping_a_failed_job_updates_its_ancestors(store, write_tree):
    dispatch, run = write_tree
    hook = new_id()
    move(store, hook, NOTIFY, "queued", parent=run, actor="deliver")
    move(store, run, POLICY, "succeeded", actor="run_execution")
    move(store, hook, NOTIFY, "failed", actor="deliver", fields={"error_type": "E"})
    assert tree(store, dispatch)[0] == "failed"
    store.delete(hook)
    assert tree(store, dispatch)[0] == "succeeded"


def test_roots_are_listed_by_tree_state_per_tenant(store, write_tree):
    dispatch, run = write_tree
    hook = new_id()
    move(store, hook, NOTIFY, "queued", parent=run, actor="deliver")
    move(store, run, POLICY, "succeeded", actor="run_execution")
    # A healthy write beside it
    fine = new_id()
    move(store, fine, POLICY, "queued", actor="dispatch_event")
    move(store, fine, POLICY, "succeeded", actor="dispatch_event")
    move(store, hook, NOTIFY, "failed", actor="deliver", fields={"error_type": "E"})

    def listed(tree_state, tenant=TENANT):
        items, _ = store.list_jobs(queues=[POLICY, NOTIFY], tenant=tenant, tree_states=[tree_state])
        return [item["id"] for item in items]

    # Only roots: the failed delivery and the run job are not listed themselves.
    assert listed("failed") == [dispatch]
    assert listed("succeeded") == [fine]
    assert listed("failed", tenant="other") == []
    assert [i["id"] for i in store.list_jobs(queues=[POLICY], tree_states=["failed"])[0]] == [
        dispatch
    ]
    # The index reads one sorted set per queue and tree state.
    ns = store.namespace
    assert store.client.zscore(f"{ns}:jobs:t:{TENANT}:{POLICY}:tree.failed", dispatch)
    assert store.client.zscore(f"{ns}:jobs:t:{TENANT}:{POLICY}:tree.failed", run) is None


def test_a_child_recorded_before_its_queued_record_leaves_the_roots(store):
    # The running record of a child can land before the parent's batched queued one.
    parent, child = new_id(), new_id()
    move(store, parent, POLICY, "running", actor="run_execution")
    move(store, child, NOTIFY, "running", actor="deliver")
    assert store.client.zscore(store.tree_index_key(NOTIFY, "running", TENANT), child)
    move(store, child, NOTIFY, "queued", parent=parent, actor="deliver")
    assert store.client.zscore(store.tree_index_key(NOTIFY, "running", TENANT), child) is None
    move(store, child, NOTIFY, "failed", actor="deliver", fields={"error_type": "E"})
    assert tree(store, parent)[0] == "failed"


def test_the_rollup_stops_at_ten_levels(store):
    chain = [new_id() for _ in range(13)]
    move(store, chain[0], POLICY, "succeeded")
    for parent, child in zip(chain, chain[1:], strict=False):
        move(store, child, POLICY, "queued", parent=parent)
        move(store, child, POLICY, "succeeded")
    move(store, chain[-1], POLICY, "failed", attempt=2, fields={"error_type": "E"})
    states = [tree(store, job)[0] for job in chain]
    assert states[-11:] == ["failed"] * 11
    assert states[:2] == ["succeeded", "succeeded"]


# ------------------------------------------------- executions ended outside their run


def parked(store, write_tree, approvers=("bob", "carol")):
    """The run job parked its execution for ``approvers`` and succeeded."""
    dispatch, run = write_tree
    marker = {
        "status": "waiting_approval",
        "execution_id": "ex-1",
        "approval_id": "ap-1",
        "approvers": list(approvers),
    }
    note(store, run, POLICY, {"waiting": json.dumps(marker)})
    move(store, run, POLICY, "succeeded", actor="run_execution")
    assert tree(store, dispatch)[0] == "waiting"
    return dispatch, run


def test_a_cancelled_execution_stops_waiting_and_reads_cancelled(store, write_tree):
    dispatch, run = parked(store, write_tree)
    # When the workflow service cancels the execution (its policy was deleted)
    JobStatus(store).end_execution(run, POLICY, "cancelled", "the policy p-1 was deleted")
    # Then nothing waits, and the write reads cancelled, saying why
    assert store.get(run)["waiting"] is None
    state, cause = tree(store, dispatch)
    assert state == "cancelled"
    assert cause["job_id"] == run
    assert cause["ended"] == {"status": "cancelled", "reason": "the policy p-1 was deleted"}
    assert cause["waiting"] is None and cause["error"] is None
    items, _ = store.list_jobs(queues=[POLICY], tenant=TENANT, tree_states=["cancelled"])
    assert [i["id"] for i in items] == [dispatch]
    assert store.list_jobs(queues=[POLICY], tenant=TENANT, tree_states=["waiting"])[0] == []
    # A marker the worker's batch writes later does not reopen it
    note(store, run, POLICY, {"waiting": json.dumps({"approvers": ["bob"]})})
    assert tree(store, dispatch)[0] == "cancelled"


def test_cancelled_ranks_below_work_that_goes_on_and_above_success(store, write_tree):
    dispatch, run = parked(store, write_tree)
    JobStatus(store).end_execution(run, POLICY, "cancelled", "cancelled on request")
    other = new_id()
    move(store, other, POLICY, "queued", parent=dispatch, actor="run_execution")
    move(store, other, POLICY, "running", actor="run_execution")
    assert tree(store, dispatch)[0] == "running"
    move(store, other, POLICY, "succeeded", actor="run_execution")
    assert tree(store, dispatch)[0] == "cancelled"


def test_an_execution_cancelled_while_its_job_runs_reads_cancelled_once_it_is_done(
    store, write_tree
):
    dispatch, run = write_tree
    JobStatus(store).end_execution(run, POLICY, "cancelled", "cancelled on request")
    assert tree(store, dispatch)[0] == "running"
    move(store, run, POLICY, "succeeded", actor="run_execution")
    assert tree(store, dispatch)[0] == "cancelled"


def test_an_execution_failed_outside_its_run_fails_the_write(store, write_tree):
    dispatch, run = parked(store, write_tree)
    # Nobody is left to decide the next stage: the execution fails
    why = "approval ap-1: stage 2 needs 1 approval(s) but includes 0 eligible people"
    JobStatus(store).end_execution(run, POLICY, "failed", why)
    state, cause = tree(store, dispatch)
    assert state == "failed"
    assert cause["job_id"] == run
    assert cause["error"] == {"type": "ExecutionFailed", "message": why}
    assert cause["ended"] == {"status": "failed", "reason": why}
    items, _ = store.list_jobs(queues=[POLICY], tenant=TENANT, tree_states=["failed"])
    assert [i["id"] for i in items] == [dispatch]


def test_the_waiting_marker_names_the_people_who_decide_now(store, write_tree):
    dispatch, run = parked(store, write_tree)
    recorder = JobStatus(store)
    # When the next stage opens for dave
    marker = {
        "status": "waiting_approval",
        "execution_id": "ex-1",
        "approval_id": "ap-1",
        "approvers": ["dave"],
    }
    recorder.rewrite_waiting(run, POLICY, marker)
    state, cause = tree(store, dispatch)
    assert state == "waiting" and cause["waiting"]["approvers"] == ["dave"]
    assert store.get(run)["waiting"]["approvers"] == ["dave"]
    # A rewrite after the end does not reopen it
    recorder.end_waiting(run, POLICY, "resumed-job")
    recorder.rewrite_waiting(run, POLICY, marker)
    assert tree(store, dispatch) == ("succeeded", None)


# ----------------------------------------------------------------------- retention


def test_a_root_whose_tree_failed_outlives_the_succeeded_retention(redis_client, namespace):
    # Given: two succeeded records kept per queue, three failed
    # (a clock a millisecond apart per write: retention drops the oldest by their time,
    # and records of one millisecond have no order among themselves)
    ticks = itertools.count()
    start = time.time()
    store = JobStatusStore(
        redis_client,
        namespace,
        keep_succeeded=2,
        keep_failed=3,
        min_age_s=0,
        clock=lambda: start + next(ticks) / 1000,
    )
    dispatch, run = new_id(), new_id()
    move(store, dispatch, POLICY, "queued", actor="dispatch_event")
    move(store, run, POLICY, "queued", parent=dispatch, actor="run_execution")
    move(store, dispatch, POLICY, "succeeded", actor="dispatch_event")
    hook = new_id()
    move(store, hook, NOTIFY, "queued", parent=run, actor="deliver")
    move(store, run, POLICY, "succeeded", actor="run_execution")
    move(store, hook, NOTIFY, "failed", actor="deliver", fields={"error_type": "WebhookFailed"})
    assert tree(store, dispatch)[0] == "failed"

    def write(actor="dispatch_event"):
        job = new_id()
        move(store, job, POLICY, "queued", actor=actor)
        move(store, job, POLICY, "succeeded", actor=actor)
        return job

    # When: more healthy writes succeed than the queue keeps
    healthy = [write() for _ in range(4)]
    # Then: the old healthy ones are gone, the failed write is still found
    assert store.get(healthy[0]) is None and store.get(healthy[-1]) is not None
    assert store.get(dispatch) is not None
    failed, _ = store.list_jobs(queues=[POLICY, NOTIFY], tenant=TENANT, tree_states=["failed"])
    assert [i["id"] for i in failed] == [dispatch]
    assert tree(store, dispatch)[0] == "failed"
    # its run job (not a root) was pruned, but its failure still counts in the write's tree
    assert store.get(run) is None
    late = new_id()
    move(store, late, POLICY, "queued", parent=dispatch, actor="run_execution")
    move(store, late, POLICY, "succeeded", actor="run_execution")
    assert tree(store, dispatch)[0] == "failed"
    # The succeeded list keeps only its two
    assert len(store.list_jobs(queues=[POLICY], tenant=TENANT, states=["succeeded"])[0]) == 2

    # When: more failed writes are held than the failed retention keeps
    def failed_write():
        job, child = new_id(), new_id()
        move(store, job, POLICY, "queued", actor="dispatch_event")
        move(store, child, NOTIFY, "queued", parent=job, actor="deliver")
        move(store, job, POLICY, "succeeded", actor="dispatch_event")
        move(store, child, NOTIFY, "failed", actor="deliver", fields={"error_type": "E"})
        return job

    more = [failed_write() for _ in range(3)]
    for _ in range(3):
        write()
    # Then: the oldest held one goes, like the oldest failed record would
    assert store.get(dispatch) is None
    failed, _ = store.list_jobs(queues=[POLICY], tenant=TENANT, tree_states=["failed"])
    assert [i["id"] for i in failed] == list(reversed(more))
