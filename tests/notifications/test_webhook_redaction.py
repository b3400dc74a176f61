"""Roles below editor see webhook URLs without their secrets, wherever a URL is shown."""

from __future__ import annotations

import pytest

from tests.notifications.conftest import auth
from workflow_service.models import Execution, StepRun, Workflow
from workflow_service.notifications.models import Delivery
from workflow_service.steps.webhook_urls import redact_url, redact_webhook_urls

URL = "https://hook-user:s3cret-pw@hooks.example.org:8443/services/T0A1B2/xYz123SeCrEt?token=abc123&team=ops"
NOTIFY_URL = "https://hooks.example.org/v1/hooks/AbC987zz?sig=zz9"
SECRETS = ("hook-user", "s3cret-pw", "T0A1B2", "xYz123SeCrEt", "abc123", "AbC987zz", "zz9")
READERS = [("viewer",), ("approver",)]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (URL, "https://***@hooks.example.org:8443/services/***/***?token=***&team=***"),
        (NOTIFY_URL, "https://hooks.example.org/v1/hooks/***?sig=***"),
        ("http://hooks.example.org/hook", "http://hooks.example.org/hook"),
        ("https://h.example.org/x?opaque-Token-42", "https://h.example.org/x?***=***"),
        ("https://h.example.org/#frag", "https://h.example.org/"),
        ("not a url", "***"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redaction_finds_urls_in_options_outputs_and_errors():
    body = {
        "steps": [
            {"kind": "webhook", "url": URL, "data": {"n": 1}},
            {"kind": "require_approval", "on_approve": [{"kind": "notify", "webhook_url": URL}]},
        ],
        "output": {"webhook": {"url": URL, "deliveries": ["d-1"]}},
        "error": f"webhook url '{URL}' failed",
    }
    text = str(redact_webhook_urls(body))
    assert not [s for s in SECRETS if s in text]
    assert text.count("hooks.example.org:8443") == 4
    assert body["steps"][0]["url"] == URL  # a copy: the row's value is untouched


def create_workflow(web) -> dict:
    body = {
        "name": "hooked",
        "entity_type": "policy",
        "trigger": "manual",
        "steps": [
            {"kind": "webhook", "url": URL},
            {
                "kind": "notify",
                "recipients": ["role:approver"],
                "channels": ["webhook"],
                "webhook_url": NOTIFY_URL,
                "subject": "hi",
            },
        ],
    }
    resp = web.simulate_post("/workflows", json=body, headers=auth())
    assert resp.status_code == 201, resp.text
    return resp.json


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.mark.parametrize("roles", READERS)
def test_readers_below_editor_see_workflows_without_url_secrets(make_web, roles):
    web = make_web()
    workflow = create_workflow(web)
    reader = auth("vera", roles)
    for path in (
        "/workflows",
        f"/workflows/{workflow['id']}",
        f"/workflows/{workflow['id']}/versions",
    ):
        resp = web.simulate_get(path, headers=reader)
        assert resp.status_code == 200, resp.text
        assert leaked(resp.text) == [], path
        assert "hooks.example.org" in resp.text
    # Editors and admins see the URLs whole
    for writer in (auth(), auth("ada", ("admin",))):
        shown = web.simulate_get(f"/workflows/{workflow['id']}", headers=writer).json
        assert shown["steps"][0]["url"] == URL and shown["steps"][1]["webhook_url"] == NOTIFY_URL


@pytest.mark.parametrize("roles", READERS)
def test_readers_below_editor_see_step_logs_without_url_secrets(make_web, roles):
    # Given: an execution whose webhook step logged its URL, and a failed step quoting it
    web = make_web()
    workflow = Workflow.get_by_id(create_workflow(web)["id"])
    execution = Execution.create(
        tenant_id="acme",
        workflow=workflow,
        workflow_version=1,
        event_id="e-1",
        event={},
        entity_type="policy",
        entity_id="p-1",
        job_id="j-1",
        error=f"invalid webhook step: input_value='{URL}'",
    )
    StepRun.create(
        execution=execution,
        key="0",
        position=0,
        kind="webhook",
        attempt=1,
        status="completed",
        output={"url": URL, "deliveries": ["d-1"]},
    )
    StepRun.create(
        execution=execution,
        key="1",
        position=1,
        kind="notify",
        attempt=1,
        status="failed",
        output={"webhook": {"url": NOTIFY_URL, "deliveries": []}},
        error=f"webhook url '{NOTIFY_URL}' refused",
    )
    reader = auth("vera", roles)
    for path in (f"/executions/{execution.id}", "/executions"):
        resp = web.simulate_get(path, headers=reader)
        assert resp.status_code == 200, resp.text
        assert leaked(resp.text) == [], path
    steps = web.simulate_get(f"/executions/{execution.id}", headers=reader).json["steps"]
    assert steps[0]["output"]["url"].startswith("https://***@hooks.example.org:8443/services/")
    # An editor sees the step log as it was written
    full = web.simulate_get(f"/executions/{execution.id}", headers=auth()).json
    assert full["steps"][0]["output"]["url"] == URL
    assert NOTIFY_URL in full["steps"][1]["error"]


def test_deliveries_show_webhook_urls_to_editors_and_not_to_readers(make_web, execution):
    web = make_web()
    Delivery.create(
        tenant_id="acme",
        execution=execution,
        step_key="0",
        recipient=URL,
        channel="webhook",
        address=URL,
        payload={},
    )
    (item,) = web.simulate_get("/deliveries", headers=auth()).json["items"]
    assert item["url"] == URL and item["recipient"] == URL
    for roles in READERS:
        assert web.simulate_get("/deliveries", headers=auth("vera", roles)).status_code == 403
