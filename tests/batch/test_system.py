"""Imports and exports end to end: the api, the workflow web and real workers on
governance.import and governance.export, on SQLite or PostgreSQL.

Policies are counted through the api's own list, so "no duplicates" is what a user
would see.
"""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest

from tests.support import poll
from tests.system import System

pytestmark = pytest.mark.e2e
QUEUES = ("governance.import", "governance.export")
BAD_ROWS = {13, 101, 250, 333, 480, 512, 640, 777, 901, 999}


@pytest.fixture(scope="module")
def system(tmp_path_factory, make_database_url, redis_url):
    log_dir = tmp_path_factory.mktemp("batch")
    env = {
        # The web and the workers share the file store, as a deployment's volume does.
        "FILES_DIR": str(log_dir / "files"),
        # Short chunks: every import here is a chain of several messages.
        "IMPORT_CHUNK_SECONDS": "2",
        "WORKER_HEARTBEAT_TIMEOUT_MS": "3000",
        "BROKER_MAINTENANCE_CHANCE": "1000000",
    }
    with System.running(
        log_dir, make_database_url, redis_url, env=env, workers=1, queues=QUEUES
    ) as running:
        yield running


@pytest.fixture
def tenant(system):
    if not system.workers:
        system.start_worker()
    return f"t{uuid.uuid4().hex[:8]}"


def policies_csv(n: int, bad: set[int] = frozenset(), prefix: str = "Policy") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["title", "policy_type", "review_frequency", "tags", "next_review_date"])
    for i in range(n):
        # A bad row: a review frequency the api does not have, or an impossible date.
        frequency = "fortnightly" if i in bad and i % 2 else "annual"
        date = "2027-02-30" if i in bad and not i % 2 else "2027-01-31"
        writer.writerow([f"{prefix} {i}", "security", frequency, "iso;soc2", date])
    return out.getvalue().encode()


def all_policies(system, tenant) -> list[dict]:
    api = system.api_client(roles=["viewer"], tenant=tenant)
    items, cursor = [], None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = api.get("/policies", params=params).raise_for_status().json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def start_import(system, tenant, data: bytes, *, dry_run=False, key=None, content_type="text/csv"):
    client = system.workflow_client(sub="edith", roles=["editor"], tenant=tenant)
    headers = {"Content-Type": content_type, **({"Idempotency-Key": key} if key else {})}
    answer = client.post(
        "/imports",
        content=data,
        params={"dry_run": str(dry_run).lower()},
        headers=headers,
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    return answer.json()


def wait_import(system, tenant, import_id: str, timeout: float = 120) -> dict:
    client = system.workflow_client(roles=["auditor"], tenant=tenant)

    def finished():
        body = client.get(f"/imports/{import_id}").raise_for_status().json()
        return body if body["status"] in ("succeeded", "failed") else None

    return poll(finished, timeout=timeout, interval=0.2, message=f"import {import_id} finished")


def download(system, tenant, href: str) -> bytes:
    client = system.workflow_client(roles=["auditor"], tenant=tenant)
    answer = client.get(href)
    assert answer.status_code == 200, answer.text
    return answer.content


def test_an_import_of_1000_rows_with_10_bad_ones(system, tenant):
    data = policies_csv(1000, BAD_ROWS)

    # A dry run checks every row and writes nothing.
    dry = start_import(system, tenant, data, dry_run=True)
    checked = wait_import(system, tenant, dry["import"]["id"])
    assert checked["status"] == "succeeded", checked
    assert (checked["valid"], checked["failed"], checked["created"]) == (990, 10, 0)
    assert sorted(e["row"] for e in checked["errors"]) == sorted(i + 2 for i in BAD_ROWS)
    assert all_policies(system, tenant) == []

    # The real run creates the 990 good rows, in a chain of messages.
    first = start_import(system, tenant, data, key="q1-policies")
    done = wait_import(system, tenant, first["import"]["id"])
    assert done["status"] == "succeeded", done
    assert (done["created"], done["failed"], done["rows_done"]) == (990, 10, 1000)
    policies = all_policies(system, tenant)
    assert len(policies) == 990
    assert len({p["title"] for p in policies}) == 990
    assert {p["owner"] for p in policies} == {"edith"}
    report = list(
        csv.DictReader(io.StringIO(download(system, tenant, done["report"]["href"]).decode()))
    )
    assert len(report) == 1000
    assert sorted(int(r["row"]) for r in report if r["status"] == "failed") == sorted(
        i + 2 for i in BAD_ROWS
    )
    created_ids = {r["policy_id"] for r in report if r["status"] == "created"}
    assert created_ids == {p["id"] for p in policies}

    # Sent again with the same key: the first import's job, and nothing new.
    again = start_import(system, tenant, data, key="q1-policies")
    assert again["import"] == first["import"] and again["job"] == first["job"]
    assert len(all_policies(system, tenant)) == 990

    # The policies exported and imported again as a new import: every row names its
    # policy (the id column), so nothing is created.
    exported = run_export(system, tenant, "csv")
    second = start_import(system, tenant, exported)
    redone = wait_import(system, tenant, second["import"]["id"])
    assert redone["status"] == "succeeded", redone
    assert (redone["created"], redone["unchanged"], redone["failed"]) == (0, 990, 0)
    assert len(all_policies(system, tenant)) == 990


def run_export(system, tenant, file_format: str, filters=None, entity_type="policy") -> bytes:
    client = system.workflow_client(sub="audrey", roles=["auditor"], tenant=tenant)
    answer = client.post(
        "/exports",
        json={"entity_type": entity_type, "format": file_format, "filters": filters or {}},
    )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job"]["id"]
    api = system.api_client(roles=["auditor"], tenant=tenant)

    def succeeded():
        record = api.get(f"/jobs/{job_id}").json()
        assert record.get("state") != "failed", record
        return record if record.get("state") == "succeeded" else None

    poll(succeeded, timeout=120, interval=0.2, message=f"export job {job_id}")
    files = system.workflow_client(roles=["auditor"], tenant=tenant)
    [stored] = files.get("/files", params={"kind": "export"}).json()["items"][:1]
    assert stored["job_id"] == job_id
    return download(system, tenant, stored["href"])


def test_an_export_holds_the_rows_the_api_lists(system, tenant):
    # More than one page of the api's list (200), and a title a spreadsheet would run.
    editor = system.api_client(sub="edith", roles=["editor"], tenant=tenant)
    titles = [f"Exported {i}" for i in range(249)] + ['=HYPERLINK("http://x")']
    for i, title in enumerate(titles):
        body = {"title": title, "policy_type": "security", "tags": ["iso", f"t{i % 3}"]}
        editor.post("/policies", json=body).raise_for_status()
    listed = all_policies(system, tenant)
    assert len(listed) == 250

    as_json = json.loads(run_export(system, tenant, "json"))
    assert as_json == listed

    rows = list(csv.DictReader(io.StringIO(run_export(system, tenant, "csv").decode())))
    assert [r["id"] for r in rows] == [p["id"] for p in listed]
    by_id = {r["id"]: r for r in rows}
    for policy in listed:
        row = by_id[policy["id"]]
        assert row["tags"] == "; ".join(policy["tags"])
        assert row["version"] == str(policy["version"])
        expected = policy["title"]
        assert row["title"] == ("'" + expected if expected.startswith("=") else expected)

    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(run_export(system, tenant, "xlsx")), read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][:3] == ("id", "title", "policy_type")
    assert [v[0] for v in values[1:]] == [p["id"] for p in listed]

    # Filters are the api's: a status nobody has yields an empty file.
    assert json.loads(run_export(system, tenant, "json", {"status": "archived"})) == []


def test_assessments_and_evidence_export_as_the_api_lists_them(system, tenant):
    editor = system.api_client(sub="edith", roles=["editor"], tenant=tenant)
    policy = editor.post("/policies", json={"title": "P", "policy_type": "security"}).json()
    for i in range(3):
        body = {
            "title": f"Assessment {i}",
            "scope": "=cmd|' /C calc'!A0",
            "policies": [policy["id"]],
        }
        editor.post("/assessments", json=body).raise_for_status()
    evidence = {"title": "Firewall rules", "kind": "config", "policies": [policy["id"]]}
    editor.post("/evidence", json=evidence).raise_for_status()
    reader = system.api_client(roles=["viewer"], tenant=tenant)

    for entity_type, collection, count in (
        ("assessment", "assessments", 3),
        ("evidence", "evidence", 1),
    ):
        listed = reader.get(f"/{collection}", params={"limit": 200}).json()["items"]
        assert len(listed) == count
        assert json.loads(run_export(system, tenant, "json", entity_type=entity_type)) == listed
        rows = list(
            csv.DictReader(
                io.StringIO(run_export(system, tenant, "csv", entity_type=entity_type).decode())
            )
        )
        assert [r["id"] for r in rows] == [item["id"] for item in listed]
        assert all(r["policies"] == policy["id"] for r in rows)
    # A cell a spreadsheet would run is neutralised.
    assert rows and all(not r["title"].startswith("=") for r in rows)
    assessment_rows = csv.DictReader(
        io.StringIO(run_export(system, tenant, "csv", entity_type="assessment").decode())
    )
    assert {r["scope"] for r in assessment_rows} == {"'=cmd|' /C calc'!A0"}
    # Filters are the api's own for the type.
    filtered = run_export(system, tenant, "json", {"status": "completed"}, entity_type="assessment")
    assert json.loads(filtered) == []


def test_kill_9_mid_import_resumes_without_duplicates(system, tenant):
    data = policies_csv(3000, prefix="Killed")
    started = start_import(system, tenant, data, key="big")
    import_id = started["import"]["id"]
    client = system.workflow_client(roles=["auditor"], tenant=tenant)

    def midway():
        body = client.get(f"/imports/{import_id}").json()
        return body if 100 <= body["rows_done"] < 2500 and body["status"] == "running" else None

    poll(midway, timeout=120, interval=0.05, message="the import past its first checkpoint")

    # When: the worker dies mid-file, and another one comes up.
    system.kill(system.workers[0])
    stopped = client.get(f"/imports/{import_id}").json()
    assert stopped["status"] == "running" and stopped["rows_done"] < 3000
    system.start_worker()

    # Then: the import resumes from its checkpoint and each row is one policy.
    done = wait_import(system, tenant, import_id, timeout=180)
    assert done["status"] == "succeeded", done
    assert (done["created"], done["failed"], done["rows_done"]) == (3000, 0, 3000)
    policies = all_policies(system, tenant)
    assert len(policies) == 3000
    assert len({p["title"] for p in policies}) == 3000


def test_imports_and_exports_stay_in_their_tenant(system, tenant):
    other = f"o{uuid.uuid4().hex[:8]}"
    started = start_import(system, tenant, policies_csv(5, prefix="Mine"))
    done = wait_import(system, tenant, started["import"]["id"])
    assert done["created"] == 5
    assert all_policies(system, other) == []
    theirs = system.workflow_client(roles=["admin"], tenant=other)
    assert theirs.get(f"/imports/{started['import']['id']}").status_code == 404
    assert theirs.get(done["report"]["href"]).status_code == 404
    assert json.loads(run_export(system, other, "json")) == []
