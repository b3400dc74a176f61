"""require_approval through the admin API, with executions run in the test process.

The engine runs with a broker that only collects messages, so each test decides when
an execution runs and can count exactly how many run messages a decision produced.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import timedelta

import falcon.testing
import httpx
import pytest

from shared.db import utcnow
from tests.approvals.conftest import TENANT, auth
from workflow_service.app import Deps, create_app
from workflow_service.approvals import jobs
from workflow_service.approvals.models import ApprovalRequest, ApprovalSlot
from workflow_service.db import database
from workflow_service.engine import ExecutionFailed
from workflow_service.models import Execution, Notification, StepRun
from workflow_service.notifications import delivery
from workflow_service.notifications.models import Delivery
from workflow_service.runtime import build_engine

OWNER = "olivia"
RUNNER = "ed"  # the editor whose change started the execution (not in the directory)
TELL_OWNER = {
    "kind": "notify",
    "recipients": ["owner"],
    "subject": "{{ approval.status }}: {{ entity.title }}",
    "body": "{% for c in approval.comments %}{{ c.approver }} said {{ c.comment }}\n{% endfor %}",
}


def approval_step(**options):
    return {
        "kind": "require_approval",
        "on_approve": [{**TELL_OWNER, "name": "approved"}],
        "on_reject": [{**TELL_OWNER, "name": "rejected"}],
        **options,
    }


def start(client, engine, outbox, step, data=None, author=(RUNNER, ["editor"])):
    """Create an active manual workflow with ``step`` (as ``author``: user, roles),
    run it to its approval."""
    body = {
        "name": "review",
        "entity_type": "policy",
        "trigger": "manual",
        "status": "active",
        "steps": [step],
    }
    created = client.simulate_post("/workflows", json=body, headers=auth(*author))
    assert created.status_code == 201, created.json
    entity = {
        "title": "Access control",
        "owner": OWNER,
        "version": 3,
        "status": "in_review",
        **(data or {}),
    }
    run = client.simulate_post(
        f"/workflows/{created.json['id']}/run",
        json={"entity_id": "p-1", "data": entity},
        headers=auth(RUNNER, ["editor"]),
    )
    assert run.status_code == 202, run.json
    execution_id = run.json["execution_id"]
    run_pending(engine, outbox)
    return execution_id


def run_pending(engine, outbox) -> int:
    messages = outbox.take("run_execution")
    for message in messages:
        # A failure is recorded on the execution; the tests look there.
        with contextlib.suppress(ExecutionFailed):
            engine.run(message.args[0])
    return len(messages)


def status_of(execution_id):
    return Execution.get_by_id(execution_id).status


def pending_for(client, user):
    listed = client.simulate_get("/approvals", params={"status": "pending"}, headers=auth(user))
    assert listed.status_code == 200, listed.json
    return listed.json["items"]


def decide(client, approval_id, user, decision="approve", comment=None, roles=None):
    return client.simulate_post(
        f"/approvals/{approval_id}/decision",
        json={"decision": decision, **({"comment": comment} if comment else {})},
        headers=auth(user, roles),
    )


def only_approval(execution_id) -> ApprovalRequest:
    (request,) = ApprovalRequest.select().where(ApprovalRequest.execution == execution_id)
    return request


def owner_inbox(execution_id):
    return list(
        Notification.select().where(
            (Notification.recipient == OWNER) & (Notification.execution == execution_id)
        )
    )


def test_any_approver_decides_and_the_execution_resumes_once(client, engine, outbox):
    execution_id = start(client, engine, outbox, approval_step(approvers=["role:approver"]))
    # Given: the execution waits and took no worker with it
    assert status_of(execution_id) == "waiting_approval"
    approval = pending_for(client, "alice")[0]
    assert approval["can_decide"] and approval["entity_version"] == 3
    assert {d["approver"] for d in approval["decisions"]} == {"alice", "bob", "carol"}
    assert pending_for(client, "bob")[0]["id"] == approval["id"]
    # each approver is also e-mailed, through the notification queue
    told = outbox.take("deliver_notification")
    assert {Delivery.get_by_id(m.args[0]).address for m in told} == {
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
    }
    # When: one approver approves
    answer = decide(client, approval["id"], "bob", comment="fine by me")
    # Then: decided, resumed exactly once, on_approve ran and told the owner
    assert answer.status_code == 200, answer.json
    assert answer.json["outcome"] == "approved" and answer.json["job"]
    assert run_pending(engine, outbox) == 1
    assert status_of(execution_id) == "completed"
    (note,) = owner_inbox(execution_id)
    assert note.subject == "approved: Access control"
    assert "bob said fine by me" in note.body
    keys = [r.key for r in StepRun.select().where(StepRun.execution == execution_id)]
    assert keys == ["0", "0", "0.0"]  # waiting run, completed run, then the branch
    # Everyone else's pending approval is gone; a late decision is a conflict
    assert pending_for(client, "alice") == []
    assert decide(client, approval["id"], "alice").status_code == 409
    detail = client.simulate_get(f"/approvals/{approval['id']}", headers=auth("bob")).json
    bob = next(d for d in detail["decisions"] if d["approver"] == "bob")
    assert bob["status"] == "approved" and bob["comment"] == "fine by me" and bob["decided_at"]
    assert {d["status"] for d in detail["decisions"] if d["approver"] != "bob"} == {"cancelled"}


def test_rejection_decides_at_once_and_runs_the_reject_steps(client, engine, outbox):
    step = approval_step(approvers=["user:alice", "user:bob", "user:carol"], mode="all")
    execution_id = start(client, engine, outbox, step)
    approval_id = only_approval(execution_id).id
    assert decide(client, approval_id, "alice").json["outcome"] is None
    assert run_pending(engine, outbox) == 0
    rejected = decide(client, approval_id, "bob", "reject", comment="section 4 is vague")
    assert rejected.status_code == 200 and rejected.json["outcome"] == "rejected"
    assert run_pending(engine, outbox) == 1
    assert status_of(execution_id) == "completed"
    (note,) = owner_inbox(execution_id)
    assert note.subject.startswith("rejected:") and "bob said section 4 is vague" in note.body
    carol = decide(client, approval_id, "carol")
    assert carol.status_code == 409 and "rejected" in carol.json["description"]
    slots = {s.approver: s.status for s in ApprovalSlot.select()}
    assert slots == {"alice": "approved", "bob": "rejected", "carol": "cancelled"}


def test_self_approval_is_refused_unless_allowed(client, engine, outbox):
    # olivia holds the approver role but owns the policy
    execution_id = start(client, engine, outbox, approval_step(approvers=["role:approver"]))
    approval_id = only_approval(execution_id).id
    assert pending_for(client, OWNER) == []
    refused = decide(client, approval_id, OWNER)
    assert refused.status_code == 403
    assert refused.json["title"] == "Self-approval refused"
    # the person whose change started the execution may not approve either
    starter = decide(client, approval_id, RUNNER, roles=["approver"])
    assert starter.status_code == 403 and "Self-approval" in starter.json["description"]
    assert status_of(execution_id) == "waiting_approval"

    allowed = start(
        client,
        engine,
        outbox,
        approval_step(approvers=["role:approver"], allow_self_approval=True),
        author=("root", ["admin"]),
    )
    answer = decide(client, only_approval(allowed).id, OWNER)
    assert answer.status_code == 200 and answer.json["outcome"] == "approved"


class CountingApi:
    """The policy api as the decision's version lookup sees it, counting its calls."""

    def __init__(self, version: int):
        self.version = version
        self.calls: list[tuple[str, str, str]] = []

    def request(self, method, path, tenant_id, **kwargs):
        self.calls.append((method, path, tenant_id))
        return httpx.Response(200, json={"id": path.rsplit("/", 1)[-1], "version": self.version})

    def close(self) -> None:
        pass


def test_only_approvers_make_the_service_call_the_api(settings, workflow_db, redis_client, outbox):
    api = CountingApi(version=3)  # the version the run asked approval for
    engine = build_engine(settings, database, outbox, redis_client, api=api)
    app = create_app(
        settings, Deps(db=workflow_db, broker=outbox, redis=redis_client, engine=engine)
    )
    client = falcon.testing.TestClient(app)
    execution_id = start(client, engine, outbox, approval_step(approvers=["user:alice"]))
    approval_id = only_approval(execution_id).id
    api.calls.clear()
    # When: someone who is not an approver, and the owner, try to decide
    assert decide(client, approval_id, "dave").status_code == 403
    assert decide(client, approval_id, OWNER).status_code == 403
    # Then: neither made the service ask the api for anything
    assert api.calls == []
    # while the approver's decision records the version the api reports
    assert decide(client, approval_id, "alice").status_code == 200
    assert api.calls == [("GET", "/policies/p-1", TENANT)]
    (slot,) = ApprovalSlot.select().where(ApprovalSlot.request == approval_id)
    assert slot.entity_version == 3


def test_only_approvers_decide_and_only_once(client, engine, outbox):
    execution_id = start(
        client, engine, outbox, approval_step(approvers=["user:alice", "user:bob"], mode="all")
    )
    approval_id = only_approval(execution_id).id
    stranger = decide(client, approval_id, "dave")
    assert stranger.status_code == 403 and stranger.json["title"] == "Not an approver"
    assert client.simulate_get(f"/approvals/{approval_id}", headers=auth("dave")).status_code == 403
    assert decide(client, approval_id, "alice").status_code == 200
    again = decide(client, approval_id, "alice", "reject")
    assert again.status_code == 409 and "already recorded" in again.json["description"]
    other_tenant = decide(client, approval_id, "alice", roles=["approver"])
    assert other_tenant.status_code == 409
    foreign = client.simulate_post(
        f"/approvals/{approval_id}/decision",
        json={"decision": "approve"},
        headers=auth("alice", tenant="globex"),
    )
    assert foreign.status_code == 404
    bad = client.simulate_post(
        f"/approvals/{approval_id}/decision", json={"decision": "maybe"}, headers=auth("bob")
    )
    assert bad.status_code == 422 and "decision" in bad.json["description"]
    assert client.simulate_get("/approvals/not-a-uuid", headers=auth("bob")).status_code == 400


def test_sequential_stages(client, engine, outbox):
    step = approval_step(
        stages=[
            {"approvers": ["user:alice"]},
            {"approvers": ["role:approver"], "mode": "all"},  # bob and carol; olivia owns it
        ]
    )
    execution_id = start(client, engine, outbox, step)
    approval_id = only_approval(execution_id).id
    assert pending_for(client, "bob") == []
    early = decide(client, approval_id, "bob")
    assert early.status_code == 403
    outbox.take("deliver_notification")
    first = decide(client, approval_id, "alice", comment="legal ok")
    assert first.json["outcome"] is None and first.json["stage"] == 2
    # the second stage's approvers are e-mailed once the decision committed
    told = outbox.take("deliver_notification")
    assert sorted(Delivery.get_by_id(m.args[0]).recipient for m in told) == ["bob", "carol"]
    assert status_of(execution_id) == "waiting_approval"
    assert [a["id"] for a in pending_for(client, "bob")] == [approval_id]
    assert decide(client, approval_id, "alice").status_code == 409  # decided at stage 1
    assert decide(client, approval_id, "bob").json["outcome"] is None
    assert run_pending(engine, outbox) == 0
    last = decide(client, approval_id, "carol")
    assert last.json["outcome"] == "approved"
    assert run_pending(engine, outbox) == 1
    assert status_of(execution_id) == "completed"
    inbox = {
        n.recipient
        for n in Notification.select().where(Notification.step_key.startswith("0.approval"))
    }
    assert inbox == {"alice", "bob", "carol"}  # each stage's approvers were told


def test_overlapping_stages_go_to_who_has_not_approved_yet(client, engine, outbox):
    # Given: a four-eyes rule, both stages naming role approver (alice, bob, carol)
    step = approval_step(
        stages=[{"approvers": ["role:approver"]}, {"approvers": ["role:approver"]}]
    )
    execution_id = start(client, engine, outbox, step)
    approval_id = only_approval(execution_id).id
    # When: alice approves stage 1, which cancels bob's and carol's stage-1 slots
    first = decide(client, approval_id, "alice")
    # Then: stage 2 is theirs, not alice's
    assert first.status_code == 200, first.json
    assert first.json["outcome"] is None and first.json["stage"] == 2
    assert status_of(execution_id) == "waiting_approval"
    second_stage = ApprovalSlot.select().where(
        (ApprovalSlot.request == approval_id) & (ApprovalSlot.stage == 1)
    )
    assert sorted(s.approver for s in second_stage) == ["bob", "carol"]
    assert pending_for(client, "alice") == []
    (bobs,) = pending_for(client, "bob")
    assert bobs["id"] == approval_id and bobs["can_decide"] and bobs["stage"] == 2
    again = decide(client, approval_id, "alice")
    assert again.status_code == 409 and "approved an earlier stage" in again.json["description"]
    last = decide(client, approval_id, "bob", comment="second pair of eyes")
    assert last.status_code == 200 and last.json["outcome"] == "approved", last.json
    assert run_pending(engine, outbox) == 1
    assert status_of(execution_id) == "completed"


def test_a_slot_cancelled_at_an_earlier_stage_is_no_decision(client, engine, outbox):
    step = approval_step(stages=[{"approvers": ["role:approver"]}, {"approvers": ["user:carol"]}])
    execution_id = start(client, engine, outbox, step)
    approval_id = only_approval(execution_id).id
    # Given: alice settled stage 1, cancelling bob's and carol's slots there
    assert decide(client, approval_id, "alice").json["stage"] == 2
    # When: bob, who decided nothing and is no approver of stage 2, tries to decide
    bob = decide(client, approval_id, "bob")
    # Then: he is told this stage is not his, not that he decided already
    assert bob.status_code == 403, bob.json
    assert bob.json["title"] == "Not an approver" and "stage 2" in bob.json["description"]
    # and carol, whose stage-1 slot was cancelled too, decides stage 2
    carol = decide(client, approval_id, "carol")
    assert carol.status_code == 200 and carol.json["outcome"] == "approved", carol.json
    assert run_pending(engine, outbox) == 1
    assert status_of(execution_id) == "completed"


def test_quorum_two_of_three(client, engine, outbox):
    step = approval_step(
        approvers=["user:alice", "user:bob", "user:carol"], mode="quorum", quorum=2
    )
    execution_id = start(client, engine, outbox, step)
    approval_id = only_approval(execution_id).id
    assert decide(client, approval_id, "carol").json["outcome"] is None
    assert decide(client, approval_id, "alice").json["outcome"] == "approved"
    assert run_pending(engine, outbox) == 1
    assert status_of(execution_id) == "completed"
    assert decide(client, approval_id, "bob").status_code == 409


def test_a_cancelled_execution_cannot_be_decided(client, engine, outbox):
    step = approval_step(approvers=["user:alice", "user:bob"], mode="all")
    execution_id = start(client, engine, outbox, step)
    approval_id = only_approval(execution_id).id
    cancelled = client.simulate_post(
        f"/executions/{execution_id}/cancel", headers=auth(RUNNER, ["editor"])
    )
    assert cancelled.status_code in (200, 202), cancelled.json
    # Then: the approval is closed by the cancel itself, without waiting for housekeeping
    detail = client.simulate_get(f"/approvals/{approval_id}", headers=auth("alice")).json
    assert detail["status"] == "cancelled" and detail["can_decide"] is False
    assert {d["status"] for d in detail["decisions"]} == {"cancelled"}
    assert pending_for(client, "alice") == []
    answer = decide(client, approval_id, "alice")
    assert answer.status_code == 409 and "cancelled" in answer.json["description"]
    assert ApprovalRequest.get_by_id(approval_id).status == "cancelled"
    assert run_pending(engine, outbox) == 0
    later = utcnow() + timedelta(minutes=1)
    assert jobs.settle_stragglers(engine.resume, now=later) == {"resumed": 0, "cancelled": 0}


def test_a_cancel_that_does_not_come_through_http_closes_the_approvals(client, engine, outbox):
    # Given: an execution waiting for alice and bob
    step = approval_step(approvers=["user:alice", "user:bob"], mode="all")
    execution_id = start(client, engine, outbox, step)
    approval_id = only_approval(execution_id).id
    # When: something other than the HTTP resource cancels it (an operator's tool, a
    # lifecycle edge): the engine's own cancel, outside any request
    assert engine.cancel(execution_id, "cancelled by an operator") is True
    # Then: its approval closed with it (the kernel's execution_ended hook), before
    # any housekeeping ran
    request = ApprovalRequest.get_by_id(approval_id)
    slots = {s.status for s in ApprovalSlot.select().where(ApprovalSlot.request == request)}
    assert request.status == "cancelled" and request.closed_reason == "its execution ended"
    assert slots == {"cancelled"}
    assert pending_for(client, "alice") == []
    answer = decide(client, approval_id, "bob")
    assert answer.status_code == 409 and "cancelled" in answer.json["description"]
    later = utcnow() + timedelta(minutes=1)
    assert jobs.settle_stragglers(engine.resume, now=later) == {"resumed": 0, "cancelled": 0}


def test_a_stage_nobody_may_decide_fails_the_execution(client, engine, outbox):
    execution_id = start(client, engine, outbox, approval_step(approvers=["owner"]))
    execution = Execution.get_by_id(execution_id)
    assert execution.status == "failed"
    assert "self-approval excluded olivia" in execution.error


def test_a_later_stage_nobody_may_decide_fails_at_the_start(client, engine, outbox):
    step = approval_step(stages=[{"approvers": ["user:alice"]}, {"approvers": ["owner"]}])
    execution = Execution.get_by_id(start(client, engine, outbox, step))
    assert execution.status == "failed" and "stage 2 needs 1 approval" in execution.error
    assert ApprovalRequest.select().count() == 0  # rolled back with the step


def test_a_next_stage_emptied_meanwhile_ends_the_approval(client, engine, outbox):
    step = approval_step(stages=[{"approvers": ["user:alice"]}, {"approvers": ["role:approver"]}])
    execution_id = start(client, engine, outbox, step)
    # Given: the directory lost every possible second-stage approver meanwhile
    for user in ("bob", "carol"):
        assert client.simulate_delete(f"/users/{user}", headers=auth("root")).status_code == 204
    # When: the first stage is approved
    answer = decide(client, only_approval(execution_id).id, "alice")
    # Then: the approval is cancelled and the execution failed, saying why
    assert answer.status_code == 200 and answer.json["outcome"] == "cancelled"
    execution = Execution.get_by_id(execution_id)
    assert execution.status == "failed" and "stage 2" in execution.error
    assert run_pending(engine, outbox) == 0


def test_concurrent_final_decisions_resume_exactly_once(client, engine, outbox):
    for _ in range(5):
        step = approval_step(approvers=["user:alice", "user:bob"], mode="all")
        execution_id = start(client, engine, outbox, step)
        approval_id = only_approval(execution_id).id
        barrier = threading.Barrier(2)
        answers = {}

        def approve(user, approval_id=approval_id, barrier=barrier, answers=answers):
            barrier.wait()
            answers[user] = decide(client, approval_id, user)

        threads = [threading.Thread(target=approve, args=(u,)) for u in ("alice", "bob")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert {a.status_code for a in answers.values()} == {200}, [
            a.json for a in answers.values()
        ]
        outcomes = sorted(str(a.json["outcome"]) for a in answers.values())
        assert outcomes == ["None", "approved"]
        assert run_pending(engine, outbox) == 1
        assert status_of(execution_id) == "completed"


def test_listing_filters_by_status(client, engine, outbox):
    first = start(client, engine, outbox, approval_step(approvers=["user:alice"]))
    second = start(client, engine, outbox, approval_step(approvers=["user:alice"]))
    decide(client, only_approval(first).id, "alice", "reject")
    pending = [a["id"] for a in pending_for(client, "alice")]
    assert pending == [only_approval(second).id]
    rejected = client.simulate_get(
        "/approvals", params={"status": "rejected"}, headers=auth("alice")
    ).json["items"]
    assert [a["id"] for a in rejected] == [only_approval(first).id]
    assert rejected[0]["my_decision"] == "rejected" and not rejected[0]["can_decide"]
    every = client.simulate_get("/approvals", headers=auth("alice")).json["items"]
    assert len(every) == 2
    assert (
        client.simulate_get(
            "/approvals", params={"status": "maybe"}, headers=auth("alice")
        ).status_code
        == 400
    )


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"kind": "require_approval", "approvers": ["role:approver"], "mode": "quorum"}, "quorum"),
        ({"kind": "require_approval"}, "approvers"),
        ({"kind": "require_approval", "approvers": ["role:wizard"]}, "approvers"),
        ({"kind": "require_approval", "approvers": ["user:a"], "due_in": "soon"}, "due_in"),
        (
            {
                "kind": "require_approval",
                "approvers": ["user:a"],
                "on_approve": [{"kind": "teleport"}],
            },
            "on_approve",
        ),
        (
            {"kind": "require_approval", "approvers": ["user:a"], "title": "{{ x.__class__ "},
            "title",
        ),
    ],
)
def test_bad_approval_steps_are_refused_naming_the_field(client, step, field):
    body = {"name": "bad", "entity_type": "policy", "trigger": "manual", "steps": [step]}
    answer = client.simulate_post("/workflows", json=body, headers=auth(RUNNER, ["editor"]))
    assert answer.status_code == 422
    assert field in answer.json["description"]


_DECIDES = [{"kind": "change_status", "to": "approved"}]


@pytest.mark.parametrize(
    "step",
    [
        {"kind": "require_approval", "approvers": ["owner"], "on_approve": _DECIDES},
        {"kind": "require_approval", "approvers": ["owner", "initiator"], "on_approve": _DECIDES},
        {
            "kind": "require_approval",
            "stages": [{"approvers": ["role:approver"]}, {"approvers": ["initiator"]}],
            "on_approve": _DECIDES,
        },
    ],
)
def test_a_deciding_stage_of_only_the_entitys_own_people_is_refused_at_save(client, step):
    # Given an approval that moves the policy to approved, whose owner and initiator may
    # never decide it: a stage naming only them could never be decided at any run.
    body = {"name": "self", "entity_type": "policy", "trigger": "manual", "steps": [step]}
    answer = client.simulate_post("/workflows", json=body, headers=auth(RUNNER, ["editor"]))
    assert answer.status_code == 422, answer.text
    assert "may not decide" in answer.json["description"]

    # The same approval deciding nothing about the entity (a sign-off) is fine, and so is
    # a stage with someone else in it.
    for allowed in (
        {**step, "on_approve": [{"kind": "notify", "recipients": ["owner"], "subject": "ok"}]},
        {
            "kind": "require_approval",
            "approvers": ["owner", "role:approver"],
            "on_approve": _DECIDES,
        },
    ):
        body = {**body, "steps": [allowed]}
        answer = client.simulate_post("/workflows", json=body, headers=auth(RUNNER, ["editor"]))
        assert answer.status_code == 201, answer.text


def test_overdue_stages_are_escalated_once(client, engine, outbox):
    step = approval_step(approvers=["user:alice"], due_in="1h", escalate_to=["role:admin"])
    execution_id = start(client, engine, outbox, step)
    request = only_approval(execution_id)
    outbox.take("deliver_notification")  # alice was asked by e-mail
    assert jobs.mark_overdue(outbox, now=utcnow()) == []
    later = utcnow() + timedelta(hours=2)
    assert jobs.mark_overdue(outbox, now=later) == [request.id]
    assert jobs.mark_overdue(outbox, now=later) == []
    told = {
        n.recipient for n in Notification.select().where(Notification.step_key == "0.overdue.0")
    }
    assert told == {"alice", "root"}
    # and by e-mail, through the delivery queue
    assert len(outbox.take("deliver_notification")) == 2
    detail = client.simulate_get(f"/approvals/{request.id}", headers=auth("alice")).json
    assert detail["overdue"] is True


def test_a_decision_that_beats_parking_is_resumed_by_the_sweep(client, engine, outbox):
    execution_id = start(client, engine, outbox, approval_step(approvers=["user:alice"]))
    # Given: the worker has committed the approval but not yet parked the execution
    Execution.update(status="running").where(Execution.id == execution_id).execute()
    answer = decide(client, only_approval(execution_id).id, "alice")
    assert answer.json["outcome"] == "approved" and answer.json["job"] is None
    assert run_pending(engine, outbox) == 0
    # When: the execution is parked, and the scheduler's sweep comes by
    Execution.update(status="waiting_approval").where(Execution.id == execution_id).execute()
    later = utcnow() + timedelta(minutes=1)
    assert jobs.settle_stragglers(engine.resume, now=later) == {"resumed": 1, "cancelled": 0}
    assert jobs.settle_stragglers(engine.resume, now=later) == {"resumed": 0, "cancelled": 0}
    # Then: it resumed once and completed
    assert run_pending(engine, outbox) == 1
    assert status_of(execution_id) == "completed"


def test_a_decision_stands_when_the_broker_is_down(client, engine, outbox):
    execution_id = start(client, engine, outbox, approval_step(approvers=["user:alice"]))
    outbox.down = True
    answer = decide(client, only_approval(execution_id).id, "alice")
    # The decision is recorded and the execution is pending; the engine's sweep re-sends
    # its run message once the broker is back.
    assert answer.status_code == 200 and answer.json["outcome"] == "approved"
    assert answer.json["job"] is None
    assert status_of(execution_id) == "pending"
    outbox.down = False
    assert engine.sweep(older_than_s=0) == [execution_id]
    assert run_pending(engine, outbox) == 1
    assert status_of(execution_id) == "completed"


def test_policy_approval_template(client):
    created = client.simulate_post(
        "/workflows/from-template/policy-approval", headers=auth(RUNNER, ["editor"])
    )
    assert created.status_code == 201, created.json
    assert created.json["status"] == "active" and created.json["trigger"] == "on_status_change"
    assert created.json["steps"][0]["kind"] == "require_approval"
    assert (
        client.simulate_post(
            "/workflows/from-template/nope", headers=auth(RUNNER, ["editor"])
        ).status_code
        == 404
    )
    assert (
        client.simulate_post(
            "/workflows/from-template/policy-approval", headers=auth("dave")
        ).status_code
        == 403
    )
    assert created.json["tenant_id"] == TENANT


def test_a_stage_decided_after_the_overdue_check_read_it_is_not_marked(client, engine, outbox):
    # Given: two stages with a due time; the first one is overdue, and the overdue check
    # has read it
    step = approval_step(
        stages=[{"approvers": ["user:alice"]}, {"approvers": ["user:bob"]}],
        due_in="1h",
        escalate_to=["role:admin"],
    )
    execution_id = start(client, engine, outbox, step)
    request = only_approval(execution_id)
    ApprovalRequest.update(due_at=utcnow() - timedelta(minutes=1)).where(
        ApprovalRequest.id == request.id
    ).execute()
    [read] = ApprovalRequest.select().where(ApprovalRequest.due_at < utcnow())
    # When: alice decides, which opens the second stage (due in an hour), and then the
    # check marks what it read
    assert decide(client, request.id, "alice").json["stage"] == 2
    outbox.take("deliver_notification")
    assert jobs.escalate_overdue(read, utcnow()) is None
    # (nor later, when the second stage is due: that is its own escalation, not this)
    assert jobs.escalate_overdue(read, utcnow() + timedelta(hours=2)) is None
    # Then: the second stage is not overdue, and nobody was told it was
    assert ApprovalRequest.get_by_id(request.id).overdue_at is None
    assert not Notification.select().where(Notification.step_key.contains("overdue")).exists()
    assert outbox.take("deliver_notification") == []
    # Nor is a copy of the second stage that is not due yet marked
    fresh = ApprovalRequest.get_by_id(request.id)
    assert jobs.escalate_overdue(fresh, utcnow()) is None
    assert ApprovalRequest.get_by_id(request.id).overdue_at is None
    # Once the second stage is due, it is escalated, to its own approver
    later = utcnow() + timedelta(hours=2)
    assert jobs.mark_overdue(outbox, now=later) == [request.id]
    told = {
        n.recipient for n in Notification.select().where(Notification.step_key == "0.overdue.1")
    }
    assert told == {"bob", "root"}


def test_stuck_deliveries_are_re_sent_once_per_period(client, engine, outbox, settings):
    # Given: alice's e-mail asking for her approval, whose message has not been
    # delivered, in a notification queue that is behind
    execution_id = start(client, engine, outbox, approval_step(approvers=["user:alice"]))
    [message] = outbox.take("deliver_notification")
    delivery_id = message.args[0]
    now = [utcnow()]

    def resend_after(seconds):
        now[0] += timedelta(seconds=seconds)
        sent = jobs.resend_deliveries(outbox, older_than_s=120, lease_s=60, now=now[0])
        assert [m.args[0] for m in outbox.take("deliver_notification")] == sent
        return sent

    # When: the housekeeping comes by every 30 s
    # Then: the message is sent again once every 120 s, not at every run
    assert resend_after(121) == [delivery_id]
    assert resend_after(0) == []
    assert resend_after(30) == []
    assert resend_after(91) == [delivery_id]
    # And a claim whose worker vanished: once every lease
    assert delivery.claim(delivery_id, settings.notifications, now[0])
    assert resend_after(30) == []
    assert resend_after(31) == [delivery_id]
    assert resend_after(0) == []
    assert resend_after(61) == [delivery_id]
    # the re-sent message can still take the abandoned claim over
    assert delivery.claim(delivery_id, settings.notifications, now[0])
    assert Execution.get_by_id(execution_id).status == "waiting_approval"
