"""Evidence: lifecycle (expired by the system only), decisions under separation of
duties, frozen content, links, filters, tenant isolation, events, and its file."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import redis

from shared.lifecycles import EVIDENCE
from tests.api.helpers import error_names, published

QUEUE = "governance.evidence"

ALLOWED = {
    ("draft", "submitted"),
    ("submitted", "accepted"),
    ("submitted", "rejected"),
}
PATH = {
    "draft": [],
    "submitted": ["submitted"],
    "accepted": ["submitted", "accepted"],
    "rejected": ["submitted", "rejected"],
}


def _move(client, evidence_id, to):
    # alice created and collected it; bob decides.
    sub = "bob" if to in ("accepted", "rejected") else "alice"
    return client.move("evidence", evidence_id, to, "admin", sub=sub)


def _evidence_in(client, status, **fields) -> dict:
    evidence = client.evidence(**fields)
    for step in PATH[status]:
        resp = _move(client, evidence["id"], step)
        assert resp.status_code == 200, resp.text
    return evidence


def _upload(client, evidence_id, data: bytes, content_type="text/plain", version=1, **kw):
    headers = {**client.headers(*kw.pop("roles", ("editor",))), "Content-Type": content_type}
    if version is not None:
        headers["If-Match"] = f'"{version}"'
    return client.client.simulate_put(
        f"/evidence/{evidence_id}/file", body=data, headers=headers, **kw
    )


@pytest.mark.parametrize("old", PATH)
@pytest.mark.parametrize("new", EVIDENCE.statuses)
def test_lifecycle_matrix(client, old, new):
    evidence = _evidence_in(client, old)
    version = len(PATH[old]) + 1

    resp = _move(client, evidence["id"], new)

    if (old, new) in ALLOWED:
        assert resp.status_code == 200, resp.text
        assert (resp.json["status"], resp.json["version"]) == (new, version + 1)
    elif new == "expired":
        # Nobody moves evidence to expired: the deadline scan does.
        assert resp.status_code == 403, resp.text
        assert resp.json["title"] == "Made by the system only"
        assert "system" in resp.json["description"]
    else:
        assert resp.status_code == 409, resp.text
        assert sorted(resp.json["allowed"]) == sorted(
            n for o, n in ALLOWED | {("accepted", "expired")} if o == old
        )
        assert f"'{old}'" in resp.json["description"] and f"'{new}'" in resp.json["description"]
    if (old, new) not in ALLOWED:
        now = client.read(f"/evidence/{evidence['id']}").json
        assert (now["status"], now["version"]) == (old, version)


@pytest.mark.parametrize("persona", [("admin",), ("service",), ("approver",)])
def test_nobody_moves_accepted_evidence_to_expired(client, persona):
    evidence = _evidence_in(client, "accepted")
    headers = {"X-Decided-By": "bob"} if persona == ("service",) else None
    resp = client.move("evidence", evidence["id"], "expired", *persona, sub="zed", headers=headers)
    assert resp.status_code == 403, resp.text
    assert client.read(f"/evidence/{evidence['id']}").json["status"] == "accepted"


def test_the_system_expires_accepted_evidence(client, entity_settings, make_app):
    from api_service.kinds import EVIDENCE_API

    evidence = _evidence_in(client, "accepted")
    _, deps = make_app(entity_settings)
    from api_service.entities import EntityService

    service = EntityService(EVIDENCE_API.kind, deps.db, deps.outbox, deps.clock)
    with deps.db.connection_context():
        assert service.system_transition(client.tenant, uuid.UUID(evidence["id"]), "expired")
        assert not service.system_transition(client.tenant, uuid.UUID(evidence["id"]), "expired")
    body = client.read(f"/evidence/{evidence['id']}").json
    assert (body["status"], body["updated_by"]) == ("expired", "system")


@pytest.mark.parametrize("decision", ["accepted", "rejected"])
@pytest.mark.parametrize("who", ["creator", "collector"])
def test_the_collector_and_creator_do_not_decide(client, decision, who):
    evidence = client.evidence(sub="carol", collector="dave")
    client.move("evidence", evidence["id"], "submitted", "editor", sub="carol")
    person = {"creator": "carol", "collector": "dave"}[who]

    resp = client.move("evidence", evidence["id"], decision, "approver", sub=person)
    assert resp.status_code == 403, resp.text
    assert resp.json["title"] == "Separation of duties" and person in resp.json["description"]
    refusals = client.read(f"/evidence/{evidence['id']}/refusals").json["items"]
    assert refusals[0]["refused_by"] == person

    # Nor through a workflow's approval.
    resp = client.move(
        "evidence", evidence["id"], decision, "service", headers={"X-Decided-By": person}
    )
    assert resp.status_code == 403, resp.text

    resp = client.move("evidence", evidence["id"], decision, "editor", sub="erin")
    assert resp.status_code == 403 and error_names(resp, "approver"), resp.text

    resp = client.move("evidence", evidence["id"], decision, "approver", sub="erin")
    assert resp.status_code == 200, resp.text


def test_submitted_and_accepted_evidence_does_not_change(client):
    evidence = _evidence_in(client, "submitted")
    eid = evidence["id"]
    resp = client.edit(f"/evidence/{eid}", {"title": "new"}, version=2)
    assert resp.status_code == 409, resp.text
    assert '"to": "rejected"' in resp.json["description"]
    _move(client, eid, "accepted")
    resp = client.edit(f"/evidence/{eid}", {"title": "new"}, version=3)
    assert resp.status_code == 409, resp.text
    assert client.read(f"/evidence/{eid}").json["title"] == "Access list export"


def test_links_and_urls(client):
    policy = client.policy()
    assessment = client.assessment()
    resp = client.post(
        "/evidence",
        {
            "title": "Firewall rules",
            "kind": "link",
            "url": "https://config.example/fw",
            "policies": [policy["id"]],
            "assessments": [assessment["id"], assessment["id"]],
            "collected_at": "2030-01-01T10:00:00+02:00",
            "valid_until": "2030-12-31",
        },
    )
    assert resp.status_code == 201, resp.text
    body = resp.json
    assert body["assessments"] == [assessment["id"]] and body["policies"] == [policy["id"]]
    assert body["collected_at"] == "2030-01-01T08:00:00Z"
    assert (body["status"], body["collector"], body["file_href"]) == ("draft", "alice", None)

    missing = str(uuid.uuid4())
    for bad, status in (
        ({"kind": "link"}, 422),
        ({"kind": "log", "url": "https://x.example"}, 422),
        ({"kind": "link", "url": "javascript:alert(1)"}, 422),
        ({"kind": "photo"}, 422),
        ({"kind": "log", "assessments": [missing]}, 422),
        ({"kind": "log", "policies": [missing]}, 422),
    ):
        resp = client.post("/evidence", {"title": "x", **bad})
        assert resp.status_code == status, (bad, resp.text)
        assert resp.json["title"] and resp.json["description"]

    # An edit that leaves a link without its url is refused too.
    resp = client.edit(f"/evidence/{body['id']}", {"url": None}, version=1)
    assert resp.status_code == 422, resp.text


def test_filters_and_paging(client):
    policy = client.policy()
    assessment = client.assessment()
    a = client.evidence(kind="log", collector="dave", valid_until="2030-03-01")
    b = client.evidence(policies=[policy["id"]], valid_until="2030-06-01")
    c = client.evidence(assessments=[assessment["id"]], collector="dave")
    _move(client, b["id"], "submitted")

    def ids(**params):
        resp = client.read("/evidence", params=params)
        assert resp.status_code == 200, resp.text
        return [x["id"] for x in resp.json["items"]]

    assert ids() == [c["id"], b["id"], a["id"]]
    assert ids(collector="dave") == [c["id"], a["id"]]
    assert ids(kind="log") == [a["id"]]
    assert ids(status="submitted") == [b["id"]]
    assert ids(policy=policy["id"]) == [b["id"]]
    assert ids(assessment=assessment["id"]) == [c["id"]]
    assert ids(valid_before="2030-04-01") == [a["id"]]
    assert ids(valid_after="2030-04-01") == [b["id"]]
    first = client.read("/evidence", params={"limit": "2"}).json
    assert [x["id"] for x in first["items"]] == [c["id"], b["id"]]
    rest = client.read("/evidence", params={"limit": "2", "cursor": first["next_cursor"]}).json
    assert [x["id"] for x in rest["items"]] == [a["id"]] and rest["next_cursor"] is None
    for bad in ({"kind": "photo"}, {"valid_after": "2030-13-01"}, {"assessment": "1"}):
        assert client.read("/evidence", params=bad).status_code == 400, bad


def test_another_tenant_sees_nothing(client):
    eid = client.evidence()["id"]
    assert _upload(client, eid, b"secret").status_code == 200
    headers = client.headers("admin", tenant="someone-else")
    for path in (f"/evidence/{eid}", f"/evidence/{eid}/file", f"/evidence/{eid}/versions"):
        assert client.client.simulate_get(path, headers=headers).status_code == 404, path
    assert client.client.simulate_get("/evidence", headers=headers).json["items"] == []
    resp = client.client.simulate_put(
        f"/evidence/{eid}/file",
        body=b"mine now",
        headers={**headers, "Content-Type": "text/plain", "If-Match": '"2"'},
    )
    assert resp.status_code == 404
    # Nor may they link it.
    resp = client.client.simulate_post(
        "/evidence", json={"title": "x", "kind": "log", "assessments": []}, headers=headers
    )
    assert resp.status_code == 201
    resp = client.client.simulate_post(
        "/assessments", json={"title": "x", "policies": [client.policy()["id"]]}, headers=headers
    )
    assert resp.status_code == 422


def test_events_on_the_evidence_queue(client, redis_url, namespace):
    evidence = client.evidence()
    eid = evidence["id"]
    _upload(client, eid, b"data")
    _move(client, eid, "submitted")
    _move(client, eid, "accepted")
    client.post(f"/evidence/{eid}/assignment", {"assignee": "dave"})
    client.client.simulate_delete(f"/evidence/{eid}", headers=client.headers())

    messages = published(redis.Redis.from_url(redis_url), namespace, QUEUE)
    events = [m["args"][0] for m in messages if m["args"][0]["entity_id"] == eid]
    assert [e["event_type"] for e in events] == [
        "evidence.created",
        "evidence.updated",
        "evidence.status_changed",
        "evidence.status_changed",
        "evidence.assigned",
        "evidence.deleted",
    ]
    assert {m["actor_name"] for m in messages} == {"dispatch_event_evidence"}
    assert events[1]["data"]["changed_fields"] == ["file"]
    assert events[1]["data"]["sha256"] == hashlib.sha256(b"data").hexdigest()
    assert events[3]["data"]["status"] == "accepted"
    assert events[3]["actor"] == "bob"


# -- the file ---------------------------------------------------------------------------


def test_upload_and_download(client, evidence_dir):
    eid = client.evidence()["id"]
    data = b"user,role\nalice,admin\n"

    resp = _upload(client, eid, data, "text/csv", params={"file_name": "../users list.csv"})
    assert resp.status_code == 200, resp.text
    body = resp.json
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert (body["size"], body["content_type"], body["version"]) == (len(data), "text/csv", 2)
    assert body["file_name"] == "_users list.csv"
    assert body["file_href"] == f"/evidence/{eid}/file"
    assert resp.headers["etag"] == '"2"'
    stored = [p for p in evidence_dir.rglob("*") if p.is_file()]
    assert len(stored) == 1 and stored[0].read_bytes() == data
    assert evidence_dir in stored[0].parents and client.tenant in str(stored[0])

    for role in ("viewer", "auditor"):
        down = client.read(f"/evidence/{eid}/file", role)
        assert down.status_code == 200, down.text
        assert down.content == data
        assert down.headers["content-type"] == "text/csv"
        assert down.headers["content-disposition"] == 'attachment; filename="_users list.csv"'
        assert down.headers["x-content-type-options"] == "nosniff"

    # A replacement replaces the stored file, and is a version of its own.
    resp = _upload(client, eid, b"%PDF-1.4 ...", "application/pdf", version=2)
    assert resp.status_code == 200 and resp.json["version"] == 3, resp.text
    assert [p.read_bytes() for p in evidence_dir.rglob("*") if p.is_file()] == [b"%PDF-1.4 ..."]
    changes = [v["change"] for v in client.read(f"/evidence/{eid}/versions").json["items"]]
    assert changes == ["evidence.created", "evidence.updated", "evidence.updated"]


def test_upload_refusals(client, entity_settings, make_app, evidence_dir):
    eid = client.evidence()["id"]
    assert client.read(f"/evidence/{eid}/file").status_code == 404

    resp = _upload(client, eid, b"<html>", "text/html")
    assert resp.status_code == 415 and "text/html" in resp.json["description"], resp.text
    resp = _upload(client, eid, b"x", "text/plain", version=None)
    assert resp.status_code == 428, resp.text
    resp = _upload(client, eid, b"x", "text/plain", version=5)
    assert resp.status_code == 412, resp.text
    resp = _upload(client, eid, b"", "text/plain")
    assert resp.status_code == 400, resp.text
    resp = _upload(client, eid, b"x", roles=("viewer",))
    assert resp.status_code == 403, resp.text

    # Given a limit of 8 bytes
    import dataclasses

    from tests.api.entity_helpers import EntityClient

    app, _ = make_app(dataclasses.replace(entity_settings, evidence_max_bytes=8))
    small = EntityClient(app, client.tenant)
    resp = _upload(small, eid, b"123456789")
    assert resp.status_code == 413, resp.text
    assert _upload(small, eid, b"12345678").status_code == 200
    # Nothing of the refused uploads is left behind.
    assert [p.read_bytes() for p in evidence_dir.rglob("*") if p.is_file()] == [b"12345678"]


@pytest.mark.parametrize("status", ["submitted", "accepted"])
def test_no_new_file_once_submitted_or_accepted(client, status):
    evidence = _evidence_in(client, status)
    version = len(PATH[status]) + 1
    resp = _upload(client, evidence["id"], b"late", version=version)
    assert resp.status_code == 409, resp.text
    assert client.read(f"/evidence/{evidence['id']}").json["sha256"] is None


def test_evidence_events_name_the_owners_of_its_live_linked_policies(client, redis_url, namespace):
    # Given: evidence of three policies, two owned by olivia, one by pete
    owned = [client.policy(owner=o)["id"] for o in ("pete", "olivia", "olivia")]
    client.policy(owner="quinn")  # the tenant's, not linked
    evidence = client.evidence(policies=owned)
    eid = evidence["id"]
    # When: pete's policy is deleted, then the evidence is submitted and accepted
    assert client.delete(owned[0]).status_code in (200, 204)
    _move(client, eid, "submitted")
    _move(client, eid, "accepted")
    bare = client.evidence()

    messages = published(redis.Redis.from_url(redis_url), namespace, QUEUE)
    events = [m["args"][0] for m in messages if m["args"][0]["entity_id"] == eid]
    # Then: each event names the distinct owners of its linked policies not deleted then
    assert [(e["event_type"], e["data"]["policy_owners"]) for e in events] == [
        ("evidence.created", ["olivia", "pete"]),
        ("evidence.status_changed", ["olivia"]),
        ("evidence.status_changed", ["olivia"]),
    ]
    # and evidence of no policy names nobody
    [created] = [m["args"][0] for m in messages if m["args"][0]["entity_id"] == bare["id"]]
    assert created["data"]["policy_owners"] == []
