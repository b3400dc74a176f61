"""Workflows of assessments and evidence end to end: the api and the workflow web under
gunicorn, Dramatiq workers on the entity and notification queues, two api relays (each
runs the deadline scan), users imported with ``python -m workflow_service users import``.

* an assessment completed through the ``assessment-completion`` template's approval;
* evidence about to expire reminds its collector once, however many relays scan; once
  expired, its collector gets a task and the owners of its policies are told;
* an ``assign`` step's assignment shows in the api (the entity and its versions).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from tests.support import ROOT, poll
from tests.system import System

pytestmark = pytest.mark.e2e

TENANT = "acme"
PEOPLE = {
    "olivia": ["editor"],
    "amy": ["editor", "approver"],  # assesses; may approve others' work, never her own
    "bob": ["approver"],
    "carol": ["editor"],  # collects evidence
    "dave": ["editor"],
}


@pytest.fixture(scope="module")
def system(tmp_path_factory, make_database_url, redis_url):
    log_dir = tmp_path_factory.mktemp("entity-workflows-system")
    env = {
        "RETRY_DELAY_SCALE": "0.05",
        "RELAY_INTERVAL_SECONDS": "0.2",
        "DEADLINE_SCAN_INTERVAL_SECONDS": "0.3",
        "EVIDENCE_EXPIRING_DAYS": "30,7",
    }
    queues = [
        "governance.policy",
        "governance.assessment",
        "governance.evidence",
        "governance.notification",
    ]
    with System.running(log_dir, make_database_url, redis_url, env=env, queues=queues) as running:
        for name in ("api-relay-1", "api-relay-2"):
            running.others.append(running._process(name, running._python("api_service", "relay")))
        users = [
            {"id": user, "name": user.title(), "roles": roles, "tenant": TENANT}
            for user, roles in PEOPLE.items()
        ]
        users_file = log_dir / "users.yaml"
        users_file.write_text(yaml.safe_dump({"users": users}))
        imported = subprocess.run(
            [sys.executable, "-m", "workflow_service", "users", "import", str(users_file)],
            env={**running.env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert imported.returncode == 0, imported.stdout + imported.stderr
        yield running


def api(system, user):
    return system.api_client(sub=user, roles=PEOPLE[user], tenant=TENANT)


def workflows(system, user):
    return system.workflow_client(sub=user, roles=PEOPLE[user], tenant=TENANT)


def created(response) -> dict:
    assert response.status_code in (200, 201), response.text
    return response.json()


def move(system, user, path, to, **body):
    moved = api(system, user).post(f"{path}/transitions", json={"to": to, **body})
    assert moved.status_code == 200, moved.text
    return moved.json()


def inbox(system, user, subject_start):
    def find():
        items = workflows(system, user).get("/notifications").json()["items"]
        return [n for n in items if n["subject"].startswith(subject_start)]

    return find


def test_an_assessment_is_completed_through_the_templates_approval(system):
    # Given: the template; amy's assessment of a policy, with evidence linked to it
    made = workflows(system, "olivia").post("/workflows/from-template/assessment-completion")
    assert made.status_code == 201, made.text
    policy = created(
        api(system, "olivia").post(
            "/policies", json={"title": "Access control", "policy_type": "security"}
        )
    )
    assessment = created(
        api(system, "olivia").post(
            "/assessments",
            json={
                "title": "Q3 access review",
                "policies": [policy["id"]],
                "assessor": "amy",
                "result": "effective",
            },
        )
    )
    path = f"/assessments/{assessment['id']}"
    created(
        api(system, "carol").post(
            "/evidence",
            json={
                "title": "Access review export",
                "kind": "link",
                "url": "https://evidence.example.org/q3",
                "assessments": [assessment["id"]],
            },
        )
    )
    # When: amy moves it to under_review
    move(system, "amy", path, "in_progress")
    move(system, "amy", path, "under_review")

    # Then: the approval waits for an approver; amy, its assessor, may not decide
    def approval_for(user):
        items = workflows(system, user).get("/approvals", params={"status": "pending"})
        return [a for a in items.json()["items"] if a["entity_id"] == assessment["id"]]

    [approval] = poll(lambda: approval_for("bob"), timeout=30, message="bob's approval")
    refused = workflows(system, "amy").post(
        f"/approvals/{approval['id']}/decision", json={"decision": "approve"}
    )
    assert refused.status_code == 403, refused.text
    # When: bob approves
    decided = workflows(system, "bob").post(
        f"/approvals/{approval['id']}/decision", json={"decision": "approve", "comment": "ok"}
    )
    assert decided.status_code == 200, decided.text
    # Then: the assessment is completed, on record as bob's decision, and amy is told
    reader = api(system, "olivia")
    poll(
        lambda: reader.get(path).json()["status"] == "completed",
        timeout=30,
        message="assessment completed",
    )
    versions = reader.get(f"{path}/versions").json()["items"]
    [completion] = [v for v in versions if v["snapshot"]["status"] == "completed"]
    assert completion["changed_by"] == "bob", completion
    poll(inbox(system, "amy", "Assessment completed"), timeout=30, message="amy told")


def test_expiring_evidence_reminds_its_collector_once_whatever_the_relays(system):
    # Given: the template, and carol's accepted evidence valid for 5 more days
    made = workflows(system, "olivia").post("/workflows/from-template/evidence-expiry")
    assert made.status_code in (200, 201), made.text
    in_five_days = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()

    def accepted_evidence(title, valid_until=in_five_days, **fields):
        evidence = created(
            api(system, "carol").post(
                "/evidence",
                json={
                    "title": title,
                    "kind": "link",
                    "url": "https://evidence.example.org/soc2",
                    "valid_until": valid_until,
                    **fields,
                },
            )
        )
        path = f"/evidence/{evidence['id']}"
        move(system, "carol", path, "submitted")
        move(system, "bob", path, "accepted")
        return evidence

    first = accepted_evidence("SOC 2 report")
    # When: two relays scan every 0.3 s; carol is reminded
    poll(inbox(system, "carol", "Evidence expiring in 5 day(s): SOC 2 report"), timeout=30)
    # and later evidence's reminder comes, so both relays scanned the first many times
    accepted_evidence("Pen test report")
    poll(inbox(system, "carol", "Evidence expiring in 5 day(s): Pen test report"), timeout=30)
    # Then: one execution and one reminder for the first evidence
    reminders = inbox(system, "carol", "Evidence expiring in 5 day(s): SOC 2 report")()
    assert len(reminders) == 1, reminders
    runs = system.executions(TENANT, entity_id=first["id"])
    assert len(runs) == 1 and runs[0]["status"] == "completed", runs

    # Given: evidence of dave's policy whose validity ended yesterday
    policy = created(
        api(system, "olivia").post(
            "/policies",
            json={"title": "Vendor audits", "policy_type": "security", "owner": "dave"},
        )
    )
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    old = accepted_evidence("Old audit", yesterday, policies=[policy["id"]])
    # When: a relay's scan expires it
    poll(inbox(system, "dave", "Evidence expired: Old audit"), timeout=30, message="dave told")
    # Then: the policy's owner was told, not the tenant's editors, and carol has the task
    assert inbox(system, "olivia", "Evidence expired: Old audit")() == []
    [run] = poll(
        lambda: [
            r for r in system.executions(TENANT, entity_id=old["id"]) if r["status"] == "completed"
        ],
        timeout=30,
        message="the expired workflow completed",
    )
    assert [
        t["assignee"]
        for t in created(workflows(system, "carol").get("/tasks"))["items"]
        if t["title"].endswith("Old audit")
    ] == ["carol"]


def test_an_assign_step_assigns_in_the_api(system):
    # Given: carol's evidence and a workflow assigning evidence to dave
    evidence = created(
        api(system, "carol").post(
            "/evidence",
            json={"title": "Firewall rules", "kind": "config", "description": "export"},
        )
    )
    workflow = created(
        workflows(system, "olivia").post(
            "/workflows",
            json={
                "name": "Hand over",
                "entity_type": "evidence",
                "trigger": "manual",
                "status": "active",
                "steps": [
                    {"kind": "assign", "assignee": "user:dave", "comment": "Dave takes over"}
                ],
            },
        )
    )
    # When: olivia runs it for the evidence
    ran = workflows(system, "olivia").post(
        f"/workflows/{workflow['id']}/run", json={"entity_id": evidence["id"]}
    )
    assert ran.status_code in (200, 201, 202), ran.text
    [execution] = system.wait_for_executions(
        1, entity_id=evidence["id"], workflow_id=workflow["id"], status="completed"
    )
    # Then: the api has dave as its collector, and an assigned version by the service
    reader = api(system, "olivia")
    path = f"/evidence/{evidence['id']}"
    assert reader.get(path).json()["collector"] == "dave"
    versions = reader.get(f"{path}/versions").json()["items"]
    assigned = [v for v in versions if v["change"] == "evidence.assigned"]
    assert len(assigned) == 1, versions
    # And dave is told
    poll(inbox(system, "dave", "You were assigned evidence Firewall rules"), timeout=30)
    detail = system.execution(execution["id"])
    assert detail["steps"][0]["output"]["assignee"] == "dave"
