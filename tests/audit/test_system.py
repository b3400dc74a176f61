"""The audit trail end to end: both services under gunicorn, a Dramatiq worker on the
policy and audit queues, real Redis.

A policy written on the api is dispatched on the worker, which records the event and
what its execution did, then kicks ``append_audit``; the entries show on ``/audit``
and the chain verifies. An audit package asked for on the workflow web is built on the
worker (policies read from the api with a service token), stored under FILES_DIR, and
downloads from ``/files/{id}`` with a manifest whose hashes match.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import poll
from tests.system import System

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(tmp_path_factory, make_database_url, redis_url):
    log_dir = tmp_path_factory.mktemp("audit-system")
    env = {"FILES_DIR": str(log_dir / "files"), "RETRY_DELAY_SCALE": "0.05"}
    queues = ["governance.policy", "governance.audit"]
    with System.running(
        log_dir, make_database_url, redis_url, env=env, queues=queues, workers=1
    ) as system:
        yield system


def test_a_policy_write_reaches_the_audit_log_and_a_package(system):
    editor = system.workflow_client(sub="olivia", roles=["editor"])
    workflow = {
        "name": "Review",
        "entity_type": "policy",
        "trigger": "on_create",
        "status": "active",
        "steps": [
            {"kind": "create_task", "role": "approver", "title": "Review {{ entity.title }}"}
        ],
    }
    assert editor.post("/workflows", json=workflow).status_code == 201
    api = system.api_client(sub="olivia", roles=["editor"])
    created = api.post("/policies", json={"title": "Travel", "policy_type": "security"})
    assert created.status_code == 201, created.text
    policy_id = created.json()["id"]

    auditor = system.workflow_client(sub="audrey", roles=["auditor"])

    def chained():
        answer = auditor.get("/audit", params={"limit": 500}).json()["items"]
        actions = [e["action"] for e in answer]
        return "execution.completed" in actions and answer

    entries = poll(chained, timeout=60, message="the execution's entries in the audit log")
    actions = [e["action"] for e in entries]
    assert actions[0] == "workflow.created"
    assert actions.count("policy.created") == 1
    event = next(e for e in entries if e["action"] == "policy.created")
    assert event["entity_id"] == policy_id and event["actor"] == "olivia"
    assert {"execution.started", "task.created", "step.completed"} <= set(actions)
    verify = auditor.get("/audit/verify").json()
    assert verify["intact"] is True and verify["entries"] >= len(entries)

    # An audit package of today
    today = datetime.now(UTC).date()
    period = {"from": today.isoformat(), "until": (today + timedelta(days=1)).isoformat()}
    asked = auditor.post("/audit/packages", json=period)
    assert asked.status_code == 202, asked.text
    job = asked.json()["job"]

    def finished():
        answer = auditor.get(job["href"])
        if answer.status_code == 200 and answer.json()["state"] in ("succeeded", "failed"):
            return answer.json()
        return None

    record = poll(finished, timeout=90, message="the package job")
    assert record["state"] == "succeeded", record
    assert (record["queue"], record["actor"]) == ("governance.audit", "build_audit_package")
    descriptor = record["result"]["value"]
    download = auditor.get(descriptor["href"])
    assert download.status_code == 200, download.text
    assert hashlib.sha256(download.content).hexdigest() == descriptor["sha256"]
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        for listed in manifest["files"]:
            data = archive.read(listed["name"])
            assert hashlib.sha256(data).hexdigest() == listed["sha256"], listed["name"]
        [policy] = [json.loads(line) for line in archive.read("policies.jsonl").splitlines()]
    assert policy["policy"]["id"] == policy_id and policy["versions"]
    assert manifest["chain"]["verify"]["intact"] is True
    # An editor may not read the package
    assert editor.get(descriptor["href"]).status_code in (403, 404)
