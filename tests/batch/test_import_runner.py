"""The import runner against the real api (in this process): dry run, real run, chunks
that continue in a new message, a run repeated after a crash, updates by id, and the
report file."""

from __future__ import annotations

import csv
import io

import pytest

from tests.batch.conftest import TENANT, api_policies, auth
from workflow_service.db import database
from workflow_service.imports import runner
from workflow_service.imports.models import ImportJob, ImportRow, ImportStatus, RowStatus


def start(client, text: str, dry_run: bool = False) -> str:
    answer = client.simulate_post(
        "/imports",
        body=text.encode(),
        params={"dry_run": "true" if dry_run else "false"},
        headers={**auth("edith", ["editor"]), "Content-Type": "text/csv"},
    )
    assert answer.status_code == 202, answer.text
    return answer.json["import"]["id"]


class Ticks:
    """A clock that moves 10 ms per reading (a run reads it about once per row)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


def run_all(import_id: str, api, store, chunk_s: float = 1000.0) -> tuple[dict, int]:
    """Run the import to its end as chained messages would; (last summary, messages)."""
    sent: list[str] = []

    def continue_with(job):
        sent.append(job.id)
        return f"next-{len(sent)}"

    with database.connection_context():
        result = runner.run(
            import_id,
            api=api,
            store=store,
            job_id="first",
            chunk_s=chunk_s,
            continue_with=continue_with,
            clock=Ticks(),
        )
        while "continued_in" in result:
            result = runner.run(
                import_id,
                api=api,
                store=store,
                job_id=result["continued_in"],
                chunk_s=chunk_s,
                continue_with=continue_with,
                clock=Ticks(),
            )
    return result, len(sent) + 1


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def policies_csv(n: int, bad: set[int] = frozenset()) -> str:
    lines = ["title,policy_type,review_frequency,tags"]
    for i in range(n):
        frequency = "fortnightly" if i in bad else "annual"
        lines.append(f"Policy {i},security,{frequency},a;b")
    return "\n".join(lines) + "\n"


def test_a_dry_run_reports_row_errors_and_writes_nothing(client, api, api_app, store):
    text = (
        "title,policy_type,next_review_date\n"
        "Good,security,2027-01-31\n,security,\nOk,ops,31/01/2027\n"
    )
    import_id = start(client, text, dry_run=True)
    result, _ = run_all(import_id, api, store)
    assert result["status"] == "succeeded"
    assert (result["valid"], result["failed"], result["created"]) == (1, 2, 0)
    assert api_policies(api_app) == []
    shown = client.simulate_get(f"/imports/{import_id}", headers=auth("a", ["auditor"])).json
    assert shown["errors"] == [
        {"row": 3, "column": "title", "message": "required; the cell is empty"},
        {"row": 4, "column": "next_review_date", "message": "must be a date (YYYY-MM-DD)"},
    ]
    report = client.simulate_get(shown["report"]["href"], headers=auth("e", ["editor"]))
    assert report.status_code == 200
    assert rows_of(report.text) == [
        ["row", "status", "policy_id", "column", "message"],
        ["2", "valid", "", "", ""],
        ["3", "failed", "", "title", "required; the cell is empty"],
        ["4", "failed", "", "next_review_date", "must be a date (YYYY-MM-DD)"],
    ]


def test_a_real_run_in_chunks_creates_each_policy_once(client, api, api_app, store):
    import_id = start(client, policies_csv(250, bad={7, 120}))
    # A budget of about 100 clock readings: each message does about 100 rows.
    result, messages = run_all(import_id, api, store, chunk_s=1.0)
    assert 3 <= messages <= 4
    assert result["status"] == "succeeded"
    assert (result["created"], result["failed"], result["rows_done"]) == (248, 2, 250)
    policies = api_policies(api_app)
    assert len(policies) == 248
    assert sorted(p["title"] for p in policies) == sorted(
        f"Policy {i}" for i in range(250) if i not in (7, 120)
    )
    assert {tuple(p["tags"]) for p in policies} == {("a", "b")}
    with database.connection_context():
        job = ImportJob.get_by_id(import_id)
        assert job.chunks == messages and job.report["created"] == 248


def test_rows_sent_again_after_a_crash_create_nothing_new(client, api, api_app, store):
    import_id = start(client, policies_csv(30))
    run_all(import_id, api, store)
    assert len(api_policies(api_app)) == 30
    # As if the worker died after its api calls and before its checkpoint: the rows are
    # pending again and the import running; the next run sends them all again.
    with database.connection_context():
        ImportRow.update(status=RowStatus.PENDING).where(
            ImportRow.import_job == import_id
        ).execute()
        ImportJob.update(status=ImportStatus.RUNNING, rows_done=0, created=0).where(
            ImportJob.id == import_id
        ).execute()
    result, _ = run_all(import_id, api, store)
    assert result["created"] == 30
    assert len(api_policies(api_app)) == 30


def test_a_row_with_an_id_updates_that_policy(client, api, api_app, store):
    first = start(client, "title,policy_type\nAccess control,security\nBackups,ops\n")
    run_all(first, api, store)
    by_title = {p["title"]: p for p in api_policies(api_app)}
    access, backups = by_title["Access control"], by_title["Backups"]
    missing = "00000000-0000-4000-8000-000000000000"
    text = (
        "id,title,policy_type,owner\n"
        f"{access['id']},Access control v2,security,olga\n"
        f"{backups['id']},Backups,ops,{backups['owner']}\n"
        f"{missing},Ghost,ops,\n"
    )
    second = start(client, text)
    result, _ = run_all(second, api, store)
    assert (result["updated"], result["unchanged"], result["failed"]) == (1, 1, 1)
    after = {p["id"]: p for p in api_policies(api_app)}
    assert len(after) == 2
    assert after[access["id"]]["title"] == "Access control v2"
    assert after[access["id"]]["owner"] == "olga"
    assert after[access["id"]]["version"] == access["version"] + 1
    assert after[backups["id"]]["version"] == backups["version"]


@pytest.mark.parametrize("dry_run", [True, False])
def test_imports_write_into_their_own_tenant(client, api, api_app, store, dry_run):
    import_id = start(client, "title,policy_type\nMine,security\n", dry_run=dry_run)
    run_all(import_id, api, store)
    assert len(api_policies(api_app, TENANT)) == (0 if dry_run else 1)
    assert api_policies(api_app, "globex") == []


def test_an_edited_export_updates_only_rows_nobody_changed_since(client, api, api_app, store):
    import falcon.testing

    first = start(client, "title,policy_type\nAccess control,security\nBackups,ops\n")
    run_all(first, api, store)
    by_title = {p["title"]: p for p in api_policies(api_app)}
    access, backups = by_title["Access control"], by_title["Backups"]
    # Someone edits Backups after the export was taken.
    edited = falcon.testing.simulate_patch(
        api_app,
        f"/policies/{backups['id']}",
        json={"content": "new"},
        headers={**auth("olga", ["editor"]), "If-Match": '"1"'},
    )
    assert edited.status_code == 200
    text = (
        "id,title,policy_type,version,status,created_by,created_at,updated_by,updated_at\n"
        f"{access['id']},Access v2,security,1,draft,x,2026-01-01,x,2026-01-01\n"
        f"{backups['id']},Backups v2,ops,1,draft,x,2026-01-01,x,2026-01-01\n"
    )
    result, _ = run_all(start(client, text), api, store)
    assert (result["updated"], result["failed"]) == (1, 1)
    after = {p["id"]: p["title"] for p in api_policies(api_app)}
    assert after == {access["id"]: "Access v2", backups["id"]: "Backups"}
