"""GET /audit, /audit/verify and POST /audit/packages."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.audit.conftest import TENANT, auth, chain_all
from workflow_service.audit.models import AuditEntry
from workflow_service.audit.record import record
from workflow_service.db import database

AUDITOR = auth("audrey", ["auditor"])


def seed(count: int, tenant: str = TENANT, start: datetime | None = None) -> None:
    start = start or datetime(2026, 11, 1)
    for i in range(count):
        record(
            tenant,
            f"event:{tenant}:{i}",
            "policy.updated" if i % 2 else "policy.created",
            actor="alice" if i % 3 else "bob",
            entity_type="policy",
            entity_id=f"p-{i % 4}",
            digest={"i": i},
            at=start + timedelta(hours=i),
        )
    chain_all(tenant)


def seqs(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["seq"] for item in response.json["items"]]


def test_the_log_pages_by_sequence_number(client):
    seed(7)
    first = client.simulate_get("/audit", params={"limit": "3"}, headers=AUDITOR)
    assert seqs(first) == [1, 2, 3]
    cursor = first.json["next_cursor"]
    second = client.simulate_get("/audit", params={"limit": "3", "cursor": cursor}, headers=AUDITOR)
    assert seqs(second) == [4, 5, 6]
    third = client.simulate_get(
        "/audit", params={"limit": "3", "cursor": second.json["next_cursor"]}, headers=AUDITOR
    )
    assert seqs(third) == [7] and third.json["next_cursor"] is None
    item = first.json["items"][0]
    assert set(item) == {
        "seq", "occurred_at", "actor", "action", "entity_type", "entity_id",
        "source_id", "digest", "prev_hash", "hash",
    }  # fmt: skip
    assert item["occurred_at"] == "2026-11-01T00:00:00Z"


def test_the_log_filters(client):
    seed(12)
    get = lambda **params: seqs(client.simulate_get("/audit", params=params, headers=AUDITOR))  # noqa: E731
    assert get(entity_type="policy", entity_id="p-1") == [2, 6, 10]
    assert get(actor="bob") == [1, 4, 7, 10]
    assert get(action="policy.created", actor="bob") == [1, 7]
    assert get(since="2026-11-01T03:00:00Z", until="2026-11-01T06:00:00Z") == [4, 5, 6]
    # An offset is converted to UTC; a date alone is its midnight
    assert get(since="2026-11-01T05:00:00+02:00", until="2026-11-02") == [
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        12,
    ]
    assert get(entity_type="workflow") == []


def test_each_tenant_reads_its_own_chain_only(client):
    seed(3, tenant=TENANT)
    seed(2, tenant="globex")
    theirs = auth("gina", ["auditor"], tenant="globex")
    response = client.simulate_get("/audit", headers=theirs)
    assert seqs(response) == [1, 2]
    assert all(i["source_id"].startswith("event:globex:") for i in response.json["items"])
    verify = client.simulate_get("/audit/verify", headers=theirs)
    assert verify.json["intact"] is True and verify.json["entries"] == 2


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJzIjoiYSJ9"}, "cursor"),  # {"s":"a"}
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"actor": "x" * 300}, "actor"),
        # an offset that moves a time at the calendar's ends past them
        ({"since": "9999-12-31T23:59:59-23:59"}, "since"),
        ({"until": "0001-01-01T00:00:00+23:59"}, "until"),
    ],
)
def test_bad_parameters_are_400s_that_say_which(client, params, name):
    response = client.simulate_get("/audit", params=params, headers=AUDITOR)
    assert response.status_code == 400, response.text
    assert name in response.json["title"] and response.json["description"]


@pytest.mark.parametrize("roles", [["viewer"], ["editor"], ["approver"], ["operator"]])
def test_only_auditors_and_admins_read_the_log(client, roles):
    for path in ("/audit", "/audit/verify"):
        assert client.simulate_get(path, headers=auth("someone", roles)).status_code == 403
    assert client.simulate_get("/audit", headers=auth("root", ["admin"])).status_code == 200


def test_verify_answers_intact_with_the_head(client):
    seed(4)
    head = AuditEntry.get((AuditEntry.tenant_id == TENANT) & (AuditEntry.seq == 4))
    response = client.simulate_get("/audit/verify", headers=AUDITOR)
    assert response.json == {"intact": True, "entries": 4, "head": {"seq": 4, "hash": head.hash}}


def test_verify_names_the_seq_of_a_row_edited_in_the_database(client):
    seed(5)
    placeholder = "%s" if database.obj.__class__.__name__.startswith("Postgres") else "?"
    database.execute_sql(
        f"UPDATE audit_entry SET entity_id = 'p-forged' WHERE tenant_id = {placeholder} "
        "AND seq = 4",
        (TENANT,),
    )
    response = client.simulate_get("/audit/verify", headers=AUDITOR)
    assert response.json["intact"] is False and response.json["broken_at"] == 4
    assert response.json["reason"]


def test_verify_names_the_seq_of_a_row_deleted_from_the_database(client):
    seed(5)
    placeholder = "%s" if database.obj.__class__.__name__.startswith("Postgres") else "?"
    database.execute_sql(
        f"DELETE FROM audit_entry WHERE tenant_id = {placeholder} AND seq = 2", (TENANT,)
    )
    response = client.simulate_get("/audit/verify", headers=AUDITOR)
    assert response.json["intact"] is False and response.json["broken_at"] == 2


def test_a_package_request_answers_202_with_its_job(client, outbox):
    response = client.simulate_post(
        "/audit/packages",
        json={"from": "2026-11-01", "until": "2026-12-01T00:00:00Z"},
        headers=AUDITOR,
    )
    assert response.status_code == 202, response.text
    job = response.json["job"]
    assert job["href"] == f"/jobs/{job['id']}" and response.headers["location"] == job["href"]
    [message] = outbox.take("build_audit_package")
    assert message.message_id == job["id"] and message.queue_name == "governance.audit"
    assert message.args == (TENANT, "2026-11-01T00:00:00", "2026-12-01T00:00:00", "audrey")
    assert message.options["tenant_id"] == TENANT


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"from": "2026-11-01"}, 400),
        ({"from": "2026-11-01", "until": "soon"}, 400),
        ({"from": "2026-11-01", "until": "9999-12-31T23:59:59-23:59"}, 400),
        ({"from": "2026-12-01", "until": "2026-11-01"}, 422),
        ({"from": "2020-01-01", "until": "2026-01-01"}, 422),
        ({"from": "2026-11-01", "until": "2026-12-01", "tenant": "globex"}, 422),
        (["2026-11-01"], 422),
    ],
)
def test_a_bad_package_request_is_a_4xx_that_says_why(client, outbox, body, status):
    response = client.simulate_post("/audit/packages", json=body, headers=AUDITOR)
    assert response.status_code == status, response.text
    assert response.json["title"] and response.json["description"]
    assert outbox.take("build_audit_package") == []


def test_a_package_request_when_redis_is_down_is_a_503(client, outbox):
    outbox.down = True
    response = client.simulate_post(
        "/audit/packages", json={"from": "2026-11-01", "until": "2026-12-01"}, headers=AUDITOR
    )
    assert response.status_code == 503 and response.json["title"] == "Queue unavailable"
