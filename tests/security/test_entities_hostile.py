"""Assessments, evidence and policy reviews under hostile or careless use: input that
must be a 4xx (never a 500), files whose bytes are not what their type says, and
hand-overs that would let someone decide on their own work."""

# ruff: noqa: F811 - the api tests' fixtures, imported, are parameters here
from __future__ import annotations

from datetime import timedelta

import pytest

from api_service.deadlines import DeadlineScanner
from shared.db import utcnow
from tests.api.conftest import (  # noqa: F401 - fixtures
    api_database_url,
    api_settings,
    client,
    entity_settings,
    evidence_dir,
    make_app,
)
from tests.api.entity_helpers import EntityClient
from tests.api.helpers import unique_tenant

# -- input ------------------------------------------------------------------------


@pytest.mark.parametrize("collected_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_collection_time_out_of_range_in_utc_is_a_422(client, collected_at):
    body = {"title": "Log export", "kind": "log", "collected_at": collected_at}
    resp = client.post("/evidence", body)
    assert resp.status_code == 422, resp.text
    assert resp.json["errors"][0]["field"] == "collected_at"
    assert "UTC" in resp.json["description"]

    eid = client.evidence()["id"]
    resp = client.edit(f"/evidence/{eid}", {"collected_at": collected_at}, 1)
    assert resp.status_code == 422, resp.text


# -- files ------------------------------------------------------------------------


def _upload(client, evidence_id, data: bytes, content_type: str, version: int = 1):
    headers = {**client.headers("editor"), "Content-Type": content_type}
    headers["If-Match"] = f'"{version}"'
    return client.client.simulate_put(f"/evidence/{evidence_id}/file", body=data, headers=headers)


@pytest.mark.parametrize(
    "content_type, data",
    [
        ("image/png", b"<html><script>alert(1)</script></html>"),
        ("image/png", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"),
        ("image/jpeg", b"GIF89a...."),
        ("application/pdf", b"<html>not a pdf</html>"),
        ("application/zip", b"MZ\x90\x00 an executable"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", b"{\\rtf1"),
    ],
)
def test_a_file_whose_bytes_are_not_its_type_is_refused(client, evidence_dir, content_type, data):
    eid = client.evidence()["id"]
    resp = _upload(client, eid, data, content_type)
    assert resp.status_code == 415, resp.text
    assert resp.json["title"] == "File content does not match its type"
    assert content_type in resp.json["description"]
    assert [p for p in evidence_dir.rglob("*") if p.is_file()] == []
    assert client.read(f"/evidence/{eid}").json["version"] == 1


@pytest.mark.parametrize(
    "content_type, data",
    [
        ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 16),
        ("image/jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 16),
        ("application/pdf", b"%PDF-1.7\n..."),
        ("application/zip", b"PK\x03\x04" + b"\x00" * 16),
        ("application/zip", b"PK\x05\x06" + b"\x00" * 18),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK\x03\x04..."),
        ("text/plain", b"<html> is text here, served as text/plain"),
    ],
)
def test_a_file_of_its_type_is_stored(client, content_type, data):
    eid = client.evidence()["id"]
    resp = _upload(client, eid, data, content_type)
    assert resp.status_code == 200, resp.text
    assert client.read(f"/evidence/{eid}/file").content == data


# -- separation of duties across a hand-over --------------------------------------


def test_a_former_assessor_does_not_complete_the_assessment_they_handed_over(client):
    # olga plans it for alice, who works on it and hands it to carol before review.
    aid = client.assessment(sub="olga", assessor="alice", result="effective")["id"]
    client.evidence(sub="olga", assessments=[aid])
    assert client.move("assessments", aid, "in_progress", "editor", sub="alice").status_code == 200
    resp = client.post(f"/assessments/{aid}/assignment", {"assignee": "carol"}, sub="alice")
    assert resp.status_code == 200, resp.text
    resp = client.move("assessments", aid, "under_review", "editor", sub="carol")
    assert resp.status_code == 200, resp.text

    for sub, roles, headers in [
        ("alice", ("approver",), None),
        ("workflow-service", ("service",), {"X-Decided-By": "alice"}),
    ]:
        resp = client.move("assessments", aid, "completed", *roles, sub=sub, headers=headers)
        assert resp.status_code == 403, resp.text
        assert resp.json["title"] == "Separation of duties"
        assert "alice was the assessor of this assessment" in resp.json["description"]

    resp = client.move("assessments", aid, "completed", "approver", sub="bob")
    assert resp.status_code == 200, resp.text


def test_a_former_collector_does_not_accept_the_evidence_they_handed_over(client):
    eid = client.evidence(sub="olga", collector="dave")["id"]
    resp = client.edit(f"/evidence/{eid}", {"collector": "erin"}, 1, sub="dave")
    assert resp.status_code == 200, resp.text
    assert client.move("evidence", eid, "submitted", "editor", sub="erin").status_code == 200

    resp = client.move("evidence", eid, "accepted", "approver", sub="dave")
    assert resp.status_code == 403, resp.text
    assert "dave was the collector of this evidence" in resp.json["description"]
    assert client.move("evidence", eid, "accepted", "approver", sub="bob").status_code == 200


def test_a_former_owner_does_not_review_the_policy_they_handed_over(client):
    policy = client.policy(owner="olga", review_frequency="annual")
    pid = policy["id"]
    assert client.move("policies", pid, "in_review", "editor").status_code == 200
    assert client.move("policies", pid, "approved", "approver", sub="bob").status_code == 200
    resp = client.post(f"/policies/{pid}/assignment", {"assignee": "carl"}, sub="olga")
    assert resp.status_code == 200, resp.text

    resp = client.post(f"/policies/{pid}/reviews", {"outcome": "no_change"}, "approver", sub="olga")
    assert resp.status_code == 403, resp.text
    assert resp.json["title"] == "Separation of duties"
    assert "olga" in resp.json["description"]
    resp = client.post(f"/policies/{pid}/reviews", {"outcome": "no_change"}, "approver", sub="bob")
    assert resp.status_code == 201, resp.text


def test_a_former_owner_does_not_approve_the_policy_they_handed_over(client):
    pid = client.policy(owner="olga")["id"]
    resp = client.post(f"/policies/{pid}/assignment", {"assignee": "carl"}, sub="olga")
    assert resp.status_code == 200, resp.text
    assert client.move("policies", pid, "in_review", "editor", sub="carl").status_code == 200

    resp = client.move("policies", pid, "approved", "approver", sub="olga")
    assert resp.status_code == 403, resp.text
    assert "olga was the owner of this policy" in resp.json["description"]
    assert client.move("policies", pid, "approved", "approver", sub="bob").status_code == 200


# -- answers a person can act on --------------------------------------------------


def test_a_bad_if_match_names_the_etag_of_what_is_changed(client):
    aid = client.assessment()["id"]
    resp = client.client.simulate_patch(
        f"/assessments/{aid}",
        json={"title": "x"},
        headers={**client.headers("editor"), "If-Match": '"abc"'},
    )
    assert resp.status_code == 400, resp.text
    assert "policy" not in resp.json["description"]
    assert "ETag" in resp.json["description"]


def test_a_file_upload_without_its_version_says_how_to_send_it(client):
    eid = client.evidence()["id"]
    headers = {**client.headers("editor"), "Content-Type": "text/plain"}
    resp = client.client.simulate_put(f"/evidence/{eid}/file", body=b"x", headers=headers)
    assert resp.status_code == 428, resp.text
    # The body is the file: the version goes in If-Match only.
    assert "in the body" not in resp.json["description"]
    assert 'If-Match: "1"' in resp.json["description"]


# -- lifecycle --------------------------------------------------------------------


def test_expired_evidence_does_not_let_an_assessment_complete(entity_settings, make_app):
    app, deps = make_app(entity_settings)
    client = EntityClient(app, unique_tenant())
    aid = client.assessment(result="effective")["id"]
    yesterday = (utcnow() - timedelta(days=1)).date().isoformat()
    eid = client.evidence(assessments=[aid], valid_until=yesterday)["id"]
    assert client.move("evidence", eid, "submitted", "editor").status_code == 200
    assert client.move("evidence", eid, "accepted", "approver", sub="bob").status_code == 200
    # The deadline scan expires it, as the relay does.
    DeadlineScanner(deps.db, utcnow).scan()
    assert client.read(f"/evidence/{eid}").json["status"] == "expired"
    for to in ("in_progress", "under_review"):
        assert client.move("assessments", aid, to, "editor").status_code == 200

    resp = client.move("assessments", aid, "completed", "approver", sub="bob")

    assert resp.status_code == 409, resp.text
    assert resp.json["missing"] == ["evidence"]
    assert "expired" in resp.json["description"]


def test_rejected_evidence_does_not_let_an_assessment_complete(client):
    aid = client.assessment(result="effective")["id"]
    eid = client.evidence(assessments=[aid])["id"]
    assert client.move("evidence", eid, "submitted", "editor").status_code == 200
    assert client.move("evidence", eid, "rejected", "approver", sub="bob").status_code == 200
    for to in ("in_progress", "under_review"):
        assert client.move("assessments", aid, to, "editor").status_code == 200

    resp = client.move("assessments", aid, "completed", "approver", sub="bob")
    assert resp.status_code == 409, resp.text
    assert resp.json["missing"] == ["evidence"]
    assert "rejected" in resp.json["description"]

    # Evidence not yet decided on counts: the reviewer decides on it with the assessment.
    client.evidence(sub="carol", assessments=[aid])
    resp = client.move("assessments", aid, "completed", "approver", sub="bob")
    assert resp.status_code == 200, resp.text
