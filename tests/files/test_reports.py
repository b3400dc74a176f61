"""Reports: each kind's rows, each format read back with its reader, and POST /reports."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta

import pytest

from tests.files.conftest import OTHER_TENANT, TENANT, add_policy, auth
from workflow_service.approvals.models import ApprovalRequest, ApprovalSlot
from workflow_service.models import Execution, Workflow
from workflow_service.reports import data
from workflow_service.reports.definitions import (
    ApprovalTurnaroundFilters,
    OverdueReviewsFilters,
    PolicyStatusFilters,
    ReportSpec,
)
from workflow_service.reports.service import REPORT_ACTOR, REPORT_QUEUE, produce
from workflow_service.storage import StoredFile

NOW = datetime(2026, 3, 1, 12, 0, 0)


def test_percentiles_interpolate_between_ranks():
    assert data.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert data.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == pytest.approx(9.1)
    assert data.percentile([7], 0.9) == 7


def test_policy_status_counts_by_status_type_and_owner(api_app, api):
    for owner, ptype in [("ann", "security"), ("ann", "security"), ("ben", "privacy")]:
        add_policy(api_app, owner=owner, policy_type=ptype)
    add_policy(api_app, OTHER_TENANT, owner="ann")  # another tenant's: not counted

    report = data.policy_status(api, TENANT, PolicyStatusFilters(), NOW)
    assert report.rows == [["draft", "privacy", "ben", 1], ["draft", "security", "ann", 2]]
    assert report.counts == {"rows": 2, "policies": 3}
    assert report.chart.labels == ["draft"] and report.chart.series == {"policies": [3]}

    only_ben = data.policy_status(api, TENANT, PolicyStatusFilters(owner="ben"), NOW)
    assert only_ben.rows == [["draft", "privacy", "ben", 1]]
    assert only_ben.filters == {"owner": "ben"}


def test_overdue_reviews_lists_past_and_soon_due_reviews(api_app, api):
    today = NOW.date()
    add_policy(api_app, title="Late", next_review_date=(today - timedelta(days=3)).isoformat())
    add_policy(api_app, title="Today", next_review_date=today.isoformat())
    add_policy(api_app, title="Soon", next_review_date=(today + timedelta(days=5)).isoformat())
    add_policy(api_app, title="Later", next_review_date=(today + timedelta(days=40)).isoformat())
    add_policy(api_app, title="Never")

    now_only = data.overdue_reviews(api, TENANT, OverdueReviewsFilters(), NOW)
    assert [(r[0], r[6], r[7]) for r in now_only.rows] == [
        ("Late", 3, "overdue"),
        ("Today", 0, "due"),
    ]
    assert now_only.counts == {"rows": 2, "overdue": 1, "due_soon": 1}

    week = data.overdue_reviews(api, TENANT, OverdueReviewsFilters(within_days=7), NOW)
    assert [r[0] for r in week.rows] == ["Late", "Today", "Soon"]
    assert week.rows[2][5] == today + timedelta(days=5)
    assert week.rows[2][6] == -5


def _decided_approval(workflow, asked: datetime, hours: float, approvers: dict[str, float]):
    execution = Execution.create(
        tenant_id=workflow.tenant_id,
        workflow=workflow,
        workflow_version=1,
        event_id=str(uuid.uuid4()),
        event={},
        entity_type="policy",
        entity_id=str(uuid.uuid4()),
        job_id=str(uuid.uuid4()),
    )
    request = ApprovalRequest.create(
        tenant_id=workflow.tenant_id,
        execution=execution,
        step_key="0",
        title="Approve",
        entity_type="policy",
        entity_id=execution.entity_id,
        stages=[],
        status="approved",
        created_at=asked,
        decided_at=asked + timedelta(hours=hours),
    )
    for approver, after in approvers.items():
        ApprovalSlot.create(
            request=request,
            tenant_id=workflow.tenant_id,
            stage=0,
            approver=approver,
            status="approved",
            created_at=asked,
            decided_at=asked + timedelta(hours=after),
        )


def _workflow(name: str, tenant: str = TENANT) -> Workflow:
    return Workflow.create(
        tenant_id=tenant,
        name=name,
        entity_type="policy",
        trigger="manual",
        created_by="olivia",
        updated_by="olivia",
    )


@pytest.fixture
def approvals(connected):
    review, publish = _workflow("Review"), _workflow("Publish")
    t0 = datetime(2026, 2, 1)
    for i, hours in enumerate([1, 2, 3, 4, 10]):
        _decided_approval(review, t0 + timedelta(days=i), hours, {"alice": hours, "bob": 2 * hours})
    _decided_approval(publish, t0, 8, {"alice": 8})
    # Outside the period below, and another tenant's: neither counts.
    _decided_approval(publish, datetime(2025, 1, 1), 100, {"alice": 100})
    _decided_approval(_workflow("Theirs", OTHER_TENANT), t0, 50, {"alice": 50})


def test_approval_turnaround_per_approver_and_workflow(approvals):
    filters = ApprovalTurnaroundFilters.model_validate(
        {"from": "2026-01-01", "until": "2026-03-01"}
    )
    report = data.approval_turnaround(TENANT, filters, NOW)
    rows = {(r[0], r[1]): r[2:] for r in report.rows}
    # alice: 1, 2, 3, 4, 8, 10 hours -> p50 3.5, p90 9.0; bob: 2, 4, 6, 8, 20
    assert rows[("approver", "alice")] == [6, 3.5, 9.0]
    assert rows[("approver", "bob")] == [5, 6.0, 15.2]
    assert rows[("workflow", "Review")] == [5, 3.0, 7.6]
    assert rows[("workflow", "Publish")] == [1, 8.0, 8.0]
    assert report.counts["decisions"] == 6
    assert report.period == "2026-01-01 to 2026-03-01"
    everything = data.approval_turnaround(TENANT, ApprovalTurnaroundFilters(), NOW)
    assert everything.counts["decisions"] == 7


def _produce(store, api, kind, fmt, filters=None, job_id="job-1"):
    spec = ReportSpec(kind=kind, format=fmt, filters=filters or {})
    return produce(
        spec, tenant=TENANT, requested_by="olivia", job_id=job_id, api=api, store=store, now=NOW
    )


def _read(store, stored) -> bytes:
    with store.open(stored) as handle:
        return handle.read()


def test_csv_neutralises_formula_cells(api_app, api, store, connected):
    add_policy(api_app, title='=HYPERLINK("http://evil")', owner="@mallory")
    stored, descriptor = _produce(store, api, "policy_status", "csv")
    rows = list(csv.reader(io.StringIO(_read(store, stored).decode("utf-8"))))
    assert rows == [
        ["status", "policy_type", "owner", "policies"],
        ["draft", "security", "'@mallory", "1"],
    ]
    assert descriptor["rows"] == 1 and descriptor["policies"] == 1
    assert descriptor["href"] == f"/files/{stored.id}"
    assert stored.name.endswith(".csv") and stored.content_type.startswith("text/csv")


def test_xlsx_opens_with_openpyxl_and_neutralises_formulas(api_app, api, store, connected):
    from openpyxl import load_workbook

    add_policy(
        api_app,
        title="=1+1",
        owner="olivia",
        next_review_date=(NOW.date() - timedelta(days=1)).isoformat(),
    )
    stored, _ = _produce(store, api, "overdue_reviews", "xlsx", {"within_days": 3})
    book = load_workbook(io.BytesIO(_read(store, stored)))
    rows = list(book["Report"].iter_rows(values_only=True))
    assert rows[0][:2] == ("title", "policy_id")
    assert rows[1][0] == "'=1+1"
    assert rows[1][6] == 1  # days overdue: a number, not text
    about = {r[0]: r[1] for r in book["About"].iter_rows(values_only=True)}
    assert about["report"] == "overdue_reviews"
    assert about["filter within_days"] == "3"


def test_pdf_shows_title_filters_and_a_table_value(api_app, api, store, connected, approvals):
    from pypdf import PdfReader

    filters = {"from": "2026-01-01", "until": "2026-03-01"}
    stored, _ = _produce(store, api, "approval_turnaround", "pdf", filters)
    data_bytes = _read(store, stored)
    assert data_bytes.startswith(b"%PDF")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data_bytes)).pages)
    assert "Approval turnaround" in text
    assert "from = 2026-01-01" in text
    assert "Publish" in text and "alice" in text
    assert "15.2" in text  # bob's p90


def test_a_retried_report_job_replaces_its_file(api_app, api, store, connected):
    add_policy(api_app)
    first, _ = _produce(store, api, "policy_status", "csv", job_id="job-9")
    add_policy(api_app)
    second, descriptor = _produce(store, api, "policy_status", "csv", job_id="job-9")
    assert second.id == first.id and descriptor["policies"] == 2
    assert StoredFile.select().count() == 1


# -- POST /reports -----------------------------------------------------------------


def test_a_report_request_is_queued_as_a_job(client, outbox):
    answer = client.simulate_post(
        "/reports",
        json={"kind": "policy_status", "format": "xlsx", "filters": {"owner": "ann"}},
        headers=auth("olivia", ["editor"]),
    )
    assert answer.status_code == 202, answer.text
    job = answer.json["job"]
    assert job["href"] == f"/jobs/{job['id']}"
    (message,) = outbox.messages
    assert (message.queue_name, message.actor_name) == (REPORT_QUEUE, REPORT_ACTOR)
    assert message.message_id == job["id"]
    assert message.options["tenant_id"] == TENANT
    assert message.args == (
        {
            "tenant": TENANT,
            "kind": "policy_status",
            "format": "xlsx",
            "filters": {"owner": "ann"},
            "requested_by": "olivia",
        },
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "everything"}, "kind"),
        ({"kind": "policy_status", "format": "docx"}, "format"),
        ({"kind": "policy_status", "filters": {"colour": "red"}}, "filters.colour"),
        ({"kind": "overdue_reviews", "filters": {"within_days": -1}}, "filters.within_days"),
        ({"kind": "policy_status", "filters": {"status": "lost"}}, "filters.status"),
        ({"kind": "approval_turnaround", "filters": {"from": "yesterday"}}, "filters.from"),
        (
            {
                "kind": "approval_turnaround",
                "filters": {"from": "2026-02-01", "until": "2026-01-01"},
            },
            "filters",
        ),
        ({"kind": "policy_status", "extra": 1}, "extra"),
        ({"kind": "policy_status", "filters": []}, "filters"),
        # an offset that moves a time at the calendar's ends past them
        (
            {"kind": "approval_turnaround", "filters": {"from": "9999-12-31T23:59:59-23:59"}},
            "filters.from",
        ),
        (
            {"kind": "approval_turnaround", "filters": {"until": "0001-01-01T00:00:00+23:59"}},
            "filters.until",
        ),
    ],
)
def test_invalid_requests_are_422s_naming_the_field(client, outbox, body, field):
    answer = client.simulate_post("/reports", json=body, headers=auth("olivia", ["editor"]))
    assert answer.status_code == 422, answer.text
    assert answer.json["title"] and answer.json["description"]
    assert field in [e["field"] for e in answer.json["errors"]]
    assert outbox.messages == []


@pytest.mark.parametrize(
    ("given", "start"),
    [
        ("2026-11-01", datetime(2026, 11, 1)),
        ("2026-11-01T00:00:00+02:00", datetime(2026, 10, 31, 22)),
        ("2026-11-01T00:00:00-05:00", datetime(2026, 11, 1, 5)),
        ("2026-11-01T00:00:00Z", datetime(2026, 11, 1)),
        ("2026-11-01T01:30:00+02:00", datetime(2026, 10, 31, 23, 30)),
    ],
)
def test_a_period_keeps_the_offset_of_a_time_at_midnight(given, start):
    from workflow_service.reports.definitions import ApprovalTurnaroundFilters, as_datetime

    filters = ApprovalTurnaroundFilters.model_validate({"from": given})
    assert as_datetime(filters.from_) == start


@pytest.mark.parametrize(
    ("roles", "status"),
    [
        (["viewer"], 403),
        (["operator"], 403),
        (["editor"], 202),
        (["approver"], 202),
        (["auditor"], 202),
        (["admin"], 202),
    ],
)
def test_who_may_ask_for_a_report(client, roles, status):
    answer = client.simulate_post(
        "/reports", json={"kind": "policy_status"}, headers=auth("u", roles)
    )
    assert answer.status_code == status, answer.text
