"""``POST /imports`` and ``GET /imports/{id}``: what is checked while the request is made
(a clear 4xx, nothing stored or started) and what a good request keeps and sends."""

from __future__ import annotations

import base64

import pytest

from tests.batch.conftest import (
    MAX_BYTES,
    MAX_ROWS,
    OTHER_TENANT,
    XLSX,
    auth,
    csv_bytes,
    xlsx_bytes,
)
from workflow_service.db import database
from workflow_service.imports.models import ImportJob, ImportRow
from workflow_service.imports.parsing import is_formula
from workflow_service.storage.models import FileKind, StoredFile

EDITOR = auth("edith", ["editor"])
GOOD = csv_bytes([["Access control", "security"], ["Backups", "operations"]])


def upload(client, body: bytes, content_type="text/csv", headers=None, **params):
    return client.simulate_post(
        "/imports",
        body=body,
        headers={**EDITOR, "Content-Type": content_type, **(headers or {})},
        params=params,
    )


def nothing_kept(outbox) -> None:
    with database.connection_context():
        _nothing_kept(outbox)


def _nothing_kept(outbox) -> None:
    assert ImportJob.select().count() == 0
    assert ImportRow.select().count() == 0
    assert StoredFile.select().count() == 0
    assert outbox.messages == []


def test_a_csv_upload_keeps_its_rows_and_sends_one_message(client, outbox):
    answer = upload(client, GOOD, file_name="q1.csv", dry_run="true")
    assert answer.status_code == 202, answer.text
    body = answer.json
    assert body["rows"] == 2 and body["dry_run"] is True
    with database.connection_context():
        job = ImportJob.get_by_id(body["import"]["id"])
        rows = list(ImportRow.select().order_by(ImportRow.row_number))
        upload_file = StoredFile.get(StoredFile.job_id == job.id)
    assert (job.tenant_id, job.created_by, job.file_name) == ("acme", "edith", "q1.csv")
    assert [(r.row_number, r.data["title"]) for r in rows] == [
        (2, "Access control"),
        (3, "Backups"),
    ]
    [message] = outbox.messages
    assert message.message_id == body["job"]["id"] == job.job_id
    assert (message.queue_name, message.actor_name) == ("governance.import", "import_entities")
    assert message.args == (job.id,) and message.options["tenant_id"] == "acme"
    assert upload_file.kind == FileKind.IMPORT_UPLOAD and upload_file.size == len(GOOD)
    shown = client.simulate_get(body["import"]["href"], headers=EDITOR)
    assert shown.status_code == 200
    assert shown.json["status"] == "queued" and shown.json["rows"] == 2


def test_xlsx_as_json_base64(client, outbox):
    data = xlsx_bytes([["Access control", "security"]], header=("Title", "Policy_Type", "Tags"))
    answer = client.simulate_post(
        "/imports",
        json={"file_name": "p.xlsx", "content_base64": base64.b64encode(data).decode()},
        headers=EDITOR,
    )
    assert answer.status_code == 202, answer.text
    assert answer.json["dry_run"] is False
    with database.connection_context():
        [row] = ImportRow.select()
    assert row.data == {"title": "Access control", "policy_type": "security", "tags": None}


def test_the_same_key_answers_with_the_first_import(client, outbox):
    key = {"Idempotency-Key": "q1-import"}
    first = upload(client, GOOD, headers=key)
    again = upload(client, GOOD, headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json == first.json
    assert again.headers.get("Idempotent-Replayed") == "true"
    with database.connection_context():
        assert ImportJob.select().count() == 1 and len(outbox.messages) == 1
    # Another caller's key of the same name is theirs.
    other = upload(client, GOOD, headers={**key, **auth("erin", ["editor"])})
    assert other.status_code == 202 and other.json["import"]["id"] != first.json["import"]["id"]
    # The same key with another file is refused.
    changed = upload(client, csv_bytes([["Other", "security"]]), headers=key)
    assert changed.status_code == 409
    assert first.json["import"]["id"] in changed.json["description"]
    with database.connection_context():
        assert ImportJob.select().count() == 2


BAD_REQUESTS = {
    "wrong type": (b"title,policy_type\nA,b\n", "application/pdf", 415, "Unsupported file type"),
    "no type": (b"title,policy_type\nA,b\n", "", 415, "Unsupported file type"),
    "too large": (
        b"title,policy_type\n" + b"A,b\n" * (MAX_BYTES // 4 + 1),
        "text/csv",
        413,
        "File too large",
    ),
    "not utf-8": (
        "title,policy_type\nCafé,b\n".encode("latin-1"),
        "text/csv",
        400,
        "Unreadable file",
    ),
    "broken quoting": (b'title,policy_type\n"A,b\n', "text/csv", 400, "Unreadable file"),
    "not a workbook": (b"PK\x03\x04 not really a zip", XLSX, 400, "Unreadable file"),
    "empty": (b"", "text/csv", 400, "Empty file"),
    "header only": (b"title,policy_type\n", "text/csv", 400, "No rows"),
    "missing column": (b"title,owner\nA,b\n", "text/csv", 422, "Missing required columns"),
    "unknown column": (b"title,policy_type,colour\nA,b,c\n", "text/csv", 422, "Unknown columns"),
    "formula": (
        b'title,policy_type\nA,b\n"=HYPERLINK(""x"")",c\n',
        "text/csv",
        422,
        "Formula in a cell",
    ),
    "dde": (b"title,policy_type\n\"+cmd|' /C calc'!A0\",c\n", "text/csv", 422, "Formula in a cell"),
    "at formula": (b"title,policy_type\nA,@SUM(A1:A2)\n", "text/csv", 422, "Formula in a cell"),
    "minus formula": (b"title,policy_type\nA,-2+3\n", "text/csv", 422, "Formula in a cell"),
    "too many rows": (csv_bytes([["A", "b"]] * (MAX_ROWS + 1)), "text/csv", 413, "Too many rows"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_a_bad_file_is_a_clear_4xx_and_nothing_is_kept(client, outbox, case):
    data, content_type, status, title = BAD_REQUESTS[case]
    answer = upload(client, data, content_type)
    assert answer.status_code == status, answer.text
    assert answer.json["title"] == title
    assert answer.json["description"]
    nothing_kept(outbox)


def test_a_formula_is_named_by_row_and_column(client, outbox):
    answer = upload(client, b"title,policy_type,owner\nA,b,c\nD,e,=1+1\n")
    assert answer.status_code == 422
    assert "Row 3, column owner" in answer.json["description"]
    nothing_kept(outbox)


def test_an_xlsx_formula_cell_is_refused(client, outbox):
    data = xlsx_bytes([["A", "security"], ['=CONCAT("a","b")', "security"]])
    answer = upload(client, data, XLSX)
    assert answer.status_code == 422 and "Row 3, column title" in answer.json["description"]
    nothing_kept(outbox)


def test_a_missing_column_is_named(client, outbox):
    answer = upload(client, b"title,owner\nA,b\n")
    assert "policy_type" in answer.json["description"]


@pytest.mark.parametrize(
    "body,status",
    [
        ({"file_name": "a.csv", "content_base64": "not base64!"}, 400),
        ({"file_name": "a.pdf", "content_base64": base64.b64encode(GOOD).decode()}, 415),
        ({"file_name": "a.csv"}, 422),
        ({"file_name": "a.csv", "content_base64": "QQ==", "colour": 1}, 422),
        (
            {
                "file_name": "a.csv",
                "content_base64": base64.b64encode(GOOD).decode(),
                "dry_run": "maybe",
            },
            400,
        ),
        ([1, 2], 400),
    ],
)
def test_bad_json_requests(client, outbox, body, status):
    answer = client.simulate_post("/imports", json=body, headers=EDITOR)
    assert answer.status_code == status, answer.text
    assert answer.json["title"] and answer.json["description"]
    nothing_kept(outbox)


def test_a_bad_idempotency_key_is_a_400(client, outbox):
    answer = upload(client, GOOD, headers={"Idempotency-Key": "x" * 201})
    assert answer.status_code == 400
    nothing_kept(outbox)


@pytest.mark.parametrize("role", ["viewer", "approver", "auditor", "operator"])
def test_only_editors_and_admins_import(client, outbox, role):
    answer = client.simulate_post(
        "/imports", body=GOOD, headers={**auth("u", [role]), "Content-Type": "text/csv"}
    )
    assert answer.status_code == 403
    nothing_kept(outbox)


def test_another_tenants_import_is_a_404(client, outbox):
    answer = upload(client, GOOD)
    href = answer.json["import"]["href"]
    assert client.simulate_get(href, headers=auth("x", ["admin"], OTHER_TENANT)).status_code == 404
    assert client.simulate_get(href, headers=auth("a", ["auditor"])).status_code == 200
    assert client.simulate_get(href, headers=auth("v", ["viewer"])).status_code == 403


@pytest.mark.parametrize(
    "text,formula",
    [
        ("=1", True),
        ("+A1", True),
        ("-2+3", True),
        ("@SUM(A1)", True),
        ("-cmd|x", True),
        ("  =1", True),
        ("-12.5", False),
        ("+44 20 7946 0958", False),
        ("- first point", False),
        ("@alice", False),
        ("=", False),
        ("plain", False),
    ],
)
def test_what_counts_as_a_formula(text, formula):
    assert is_formula(text) is formula


def test_a_semicolon_separated_csv_is_read(client, outbox):
    answer = upload(client, "title;policy_type;tags\nAccès;security;a,b\n".encode())
    assert answer.status_code == 202, answer.text
    with database.connection_context():
        [row] = ImportRow.select()
    assert row.data == {"title": "Accès", "policy_type": "security", "tags": "a,b"}


class Unreachable:
    messages: list = []

    def enqueue(self, message, *, delay=None):
        import redis

        raise redis.ConnectionError("down")


def test_redis_down_is_a_503_and_nothing_is_kept(settings, workflow_db, redis_client):
    import falcon.testing

    from workflow_service.app import Deps, create_app

    app = create_app(settings, Deps(db=workflow_db, broker=Unreachable(), redis=redis_client))
    answer = falcon.testing.TestClient(app).simulate_post(
        "/imports",
        body=GOOD,
        headers={**EDITOR, "Content-Type": "text/csv", "Idempotency-Key": "k"},
    )
    assert answer.status_code == 503 and answer.json["title"] == "Queue unavailable"
    nothing_kept(Unreachable())
