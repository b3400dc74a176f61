"""``/files``: downloads for the roles that may read each kind, in the file's tenant only."""

from __future__ import annotations

import hashlib

import pytest

from tests.files.conftest import OTHER_TENANT, TENANT, auth
from workflow_service.db import database
from workflow_service.storage.models import FileKind

#: Who reads each kind (admin reads all; viewers and operators none).
READERS = {
    FileKind.REPORT: {"editor", "approver", "auditor", "admin"},
    FileKind.EXPORT: {"editor", "approver", "auditor", "admin"},
    FileKind.IMPORT_REPORT: {"editor", "auditor", "admin"},
    FileKind.IMPORT_UPLOAD: {"editor", "auditor", "admin"},
    FileKind.AUDIT_PACKAGE: {"auditor", "admin"},
}
ROLES = ("viewer", "editor", "approver", "auditor", "admin", "operator")


def _file(store, kind="report", tenant=TENANT, name="report.csv", data=b"a,b\n1,2\n"):
    with (
        database.connection_context(),
        store.create(
            tenant=tenant,
            kind=kind,
            name=name,
            content_type="text/csv",
            created_by="olivia",
            job_id=None,
        ) as out,
    ):
        out.write(data)
    return out.file


@pytest.mark.parametrize("kind", FileKind.ALL)
@pytest.mark.parametrize("role", ROLES)
def test_each_kind_is_read_by_its_roles_only(client, store, kind, role):
    stored = _file(store, kind)
    answer = client.simulate_get(f"/files/{stored.id}", headers=auth("u", [role]))
    listed = client.simulate_get("/files", headers=auth("u", [role]))
    if role in READERS[kind]:
        assert answer.status_code == 200, answer.text
        assert answer.content == b"a,b\n1,2\n"
        assert [f["id"] for f in listed.json["items"]] == [stored.id]
    else:
        # Not a 403 for a reader of other kinds: that would confirm the file exists.
        assert answer.status_code in (403, 404)
        assert listed.status_code == 403 or listed.json["items"] == []


def test_a_download_is_an_attachment_that_is_never_sniffed(client, store):
    data = b"<html><script>alert(1)</script>"
    stored = _file(store, name='status "Q1".csv', data=data)
    answer = client.simulate_get(f"/files/{stored.id}", headers=auth("e", ["editor"]))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv"
    assert answer.headers["x-content-type-options"] == "nosniff"
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="status_Q1_.csv"')
    assert "filename*=UTF-8''status%20%22Q1%22.csv" in disposition
    assert answer.headers["content-length"] == str(len(data))
    assert hashlib.sha256(answer.content).hexdigest() == stored.sha256


def test_another_tenants_file_is_not_found(client, store):
    theirs = _file(store, tenant=OTHER_TENANT)
    answer = client.simulate_get(f"/files/{theirs.id}", headers=auth("a", ["admin"]))
    assert answer.status_code == 404
    assert answer.json["title"] == "File not found"
    listed = client.simulate_get("/files", headers=auth("a", ["admin"]))
    assert listed.json["items"] == []
    mine = client.simulate_get("/files", headers=auth("g", ["admin"], OTHER_TENANT))
    assert [f["id"] for f in mine.json["items"]] == [theirs.id]


def test_bad_ids_and_parameters_are_400s(client, store):
    headers = auth("a", ["admin"])
    assert client.simulate_get("/files/not-a-uuid", headers=headers).status_code == 400
    bad_kind = client.simulate_get("/files", params={"kind": "nope"}, headers=headers)
    assert bad_kind.status_code == 400 and "kind" in bad_kind.json["title"]
    bad_cursor = client.simulate_get("/files", params={"cursor": "zzz"}, headers=headers)
    assert bad_cursor.status_code == 400


def test_expired_bytes_are_gone_with_their_row(client, store, clock):
    from datetime import timedelta

    stored = _file(store)
    clock.now += timedelta(days=31)
    with database.connection_context():
        assert store.purge_expired() == 1
    answer = client.simulate_get(f"/files/{stored.id}", headers=auth("a", ["admin"]))
    assert answer.status_code == 404


def test_the_list_pages_newest_first_and_filters_by_kind(client, store, clock):
    from datetime import timedelta

    made = []
    for i in range(5):
        clock.now += timedelta(seconds=1)
        made.append(_file(store, kind="report" if i % 2 == 0 else "export").id)
    headers = auth("a", ["admin"])
    first = client.simulate_get("/files", params={"limit": 2}, headers=headers).json
    second = client.simulate_get(
        "/files", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
    ).json
    third = client.simulate_get(
        "/files", params={"limit": 2, "cursor": second["next_cursor"]}, headers=headers
    ).json
    ids = [f["id"] for page in (first, second, third) for f in page["items"]]
    assert ids == made[::-1]
    assert third["next_cursor"] is None
    exports = client.simulate_get("/files", params={"kind": "export"}, headers=headers).json
    assert [f["id"] for f in exports["items"]] == [made[3], made[1]]
