"""Assessments: lifecycle, completion rules and separation of duties, If-Match, soft
delete, filters and paging, tenant isolation, events."""

from __future__ import annotations

import pytest

from shared.lifecycles import ASSESSMENT
from tests.api.helpers import error_names, published

QUEUE = "governance.assessment"

ALLOWED = {
    ("planned", "in_progress"),
    ("planned", "cancelled"),
    ("in_progress", "under_review"),
    ("in_progress", "cancelled"),
    ("under_review", "completed"),
    ("under_review", "in_progress"),
    ("under_review", "cancelled"),
}
#: A path from planned to each status (completion by bob: alice created and submitted).
PATH = {
    "planned": [],
    "in_progress": ["in_progress"],
    "under_review": ["in_progress", "under_review"],
    "completed": ["in_progress", "under_review", "completed"],
    "cancelled": ["cancelled"],
}


def _move(client, assessment_id, to):
    sub = "bob" if to == "completed" else "alice"
    return client.move("assessments", assessment_id, to, "admin", sub=sub)


def _ready(client, **fields) -> dict:
    """An assessment with a result and a piece of evidence: it may be completed."""
    assessment = client.assessment(result="effective", **fields)
    client.evidence(assessments=[assessment["id"]])
    return assessment


def _assessment_in(client, status) -> dict:
    assessment = _ready(client)
    for step in PATH[status]:
        resp = _move(client, assessment["id"], step)
        assert resp.status_code == 200, resp.text
    return assessment


@pytest.mark.parametrize("old", ASSESSMENT.statuses)
@pytest.mark.parametrize("new", ASSESSMENT.statuses)
def test_lifecycle_matrix(client, old, new):
    assessment = _assessment_in(client, old)
    version = len(PATH[old]) + 1

    resp = _move(client, assessment["id"], new)

    if (old, new) in ALLOWED:
        assert resp.status_code == 200, resp.text
        assert resp.json["status"] == new
        assert resp.json["version"] == version + 1
        assert resp.headers["etag"] == f'"{version + 1}"'
    else:
        assert resp.status_code == 409, resp.text
        assert sorted(resp.json["allowed"]) == sorted(n for o, n in ALLOWED if o == old)
        assert resp.json["title"] == "Transition not allowed"
        assert f"'{old}'" in resp.json["description"] and f"'{new}'" in resp.json["description"]
        now = client.read(f"/assessments/{assessment['id']}").json
        assert (now["status"], now["version"]) == (old, version)


def test_create_defaults_and_links(client):
    policy = client.policy()
    resp = client.post(
        "/assessments",
        {"title": "  Q1 review ", "policies": [policy["id"], policy["id"]], "scope": "IAM"},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json
    assert body["title"] == "Q1 review"
    assert body["policies"] == [policy["id"]]
    assert (body["status"], body["version"], body["assessor"]) == ("planned", 1, "alice")
    assert body["result"] is None and body["submitted_by"] is None
    assert resp.headers["location"] == f"/assessments/{body['id']}"
    assert resp.headers["etag"] == '"1"'
    assert len(body["jobs"]) == 1


def test_links_must_name_policies_of_the_tenant(client):
    other = client.create(roles=("editor",))  # a policy of this tenant
    foreign = client.client.simulate_post(
        "/policies",
        json={"title": "Theirs", "policy_type": "security"},
        headers=client.headers("editor", tenant="someone-else"),
    ).json
    deleted = client.create()
    client.delete(deleted["id"])

    for bad in (foreign["id"], deleted["id"], "7c9e6679-7425-40de-944b-e07fc1f90ae7"):
        resp = client.post("/assessments", {"title": "x", "policies": [other["id"], bad]})
        assert resp.status_code == 422, resp.text
        assert resp.json["missing"] == [bad]
        assert bad in resp.json["description"]

    resp = client.post("/assessments", {"title": "x", "policies": ["not-a-uuid"]})
    assert resp.status_code == 422


def test_completion_needs_a_result_and_evidence(client):
    assessment = client.assessment()
    aid = assessment["id"]
    _move(client, aid, "in_progress")
    _move(client, aid, "under_review")

    resp = _move(client, aid, "completed")
    assert resp.status_code == 409, resp.text
    assert resp.json["title"] == "Requirements not met"
    assert resp.json["missing"] == ["result", "evidence"]
    assert "result" in resp.json["description"] and "evidence" in resp.json["description"]

    # Given a result (set while in progress) and a piece of evidence that is deleted
    _move(client, aid, "in_progress")
    client.edit(f"/assessments/{aid}", {"result": "ineffective"}, version=4)
    evidence = client.evidence(assessments=[aid])
    client.client.simulate_delete(f"/evidence/{evidence['id']}", headers=client.headers())
    _move(client, aid, "under_review")
    resp = _move(client, aid, "completed")
    assert resp.status_code == 409 and resp.json["missing"] == ["evidence"], resp.text

    # When live evidence is linked to it, it completes.
    client.evidence(assessments=[aid])
    resp = _move(client, aid, "completed")
    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "completed"


@pytest.mark.parametrize(
    ("who", "fields"),
    [
        ("carol", {"created_by": "carol"}),
        ("dave", {"assessor": "dave"}),
        ("erin", {"submitted_by": "erin"}),
    ],
)
def test_whoever_created_assesses_or_submitted_it_may_not_complete_it(client, who, fields):
    creator = fields.get("created_by", "alice")
    assessment = _ready(client, sub=creator, assessor=fields.get("assessor", "zed"))
    aid = assessment["id"]
    submitter = fields.get("submitted_by", creator)
    client.move("assessments", aid, "in_progress", "editor", sub=submitter)
    assert (
        client.move("assessments", aid, "under_review", "editor", sub=submitter).json[
            "submitted_by"
        ]
        == submitter
    )

    resp = client.move("assessments", aid, "completed", "approver", sub=who)
    assert resp.status_code == 403, resp.text
    assert resp.json["title"] == "Separation of duties"
    assert who in resp.json["description"]

    refusals = client.read(f"/assessments/{aid}/refusals").json["items"]
    assert refusals[0]["refused_by"] == who and refusals[0]["to_status"] == "completed"

    resp = client.move("assessments", aid, "completed", "approver", sub="someone-else")
    assert resp.status_code == 200, resp.text


def test_completion_is_a_decision(client):
    assessment = _assessment_in(client, "under_review")
    aid = assessment["id"]
    resp = client.move("assessments", aid, "completed", "editor", sub="bob")
    assert resp.status_code == 403 and error_names(resp, "approver"), resp.text

    # The workflow service completes it only for named deciders, each checked.
    resp = client.move("assessments", aid, "completed", "service", sub="workflow-service")
    assert resp.status_code == 403 and error_names(resp, "X-Decided-By"), resp.text
    resp = client.move(
        "assessments", aid, "completed", "service", headers={"X-Decided-By": "alice"}
    )
    assert resp.status_code == 403 and error_names(resp, "alice"), resp.text
    resp = client.move(
        "assessments",
        aid,
        "completed",
        "service",
        sub="workflow-service",
        headers={"X-Decided-By": "bob"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json["updated_by"] == "bob"
    versions = client.read(f"/assessments/{aid}/versions").json["items"]
    assert (versions[-1]["changed_by"], versions[-1]["via"]) == ("bob", "workflow-service")


def test_content_under_review_does_not_change(client):
    assessment = _assessment_in(client, "under_review")
    aid = assessment["id"]
    resp = client.edit(f"/assessments/{aid}", {"findings": "new"}, version=3)
    assert resp.status_code == 409, resp.text
    assert "in_progress" in resp.json["description"]
    assert f"/assessments/{aid}/transitions" in resp.json["description"]


def test_patch_needs_a_current_version(client):
    aid = client.assessment()["id"]
    resp = client.edit(f"/assessments/{aid}", {"findings": "x"})
    assert resp.status_code == 428, resp.text
    resp = client.edit(f"/assessments/{aid}", {"findings": "x"}, version=1)
    assert resp.status_code == 200 and resp.json["version"] == 2, resp.text
    assert resp.headers["etag"] == '"2"'
    resp = client.edit(f"/assessments/{aid}", {"findings": "y"}, version=1)
    assert resp.status_code == 412, resp.text
    assert resp.json["current_version"] == 2
    resp = client.edit(f"/assessments/{aid}", {"title": None}, version=2)
    assert resp.status_code == 422, resp.text
    resp = client.edit(f"/assessments/{aid}", {"result": "great"}, version=2)
    assert resp.status_code == 422, resp.text


def test_soft_delete_keeps_the_history(client):
    aid = client.assessment()["id"]
    headers = {**client.headers(), "If-Match": '"7"'}
    assert client.client.simulate_delete(f"/assessments/{aid}", headers=headers).status_code == 412
    resp = client.client.simulate_delete(f"/assessments/{aid}", headers=client.headers())
    assert resp.status_code == 200 and resp.json["deleted"] is True, resp.text
    assert client.read(f"/assessments/{aid}").status_code == 404
    assert aid not in [a["id"] for a in client.read("/assessments").json["items"]]
    changes = [v["change"] for v in client.read(f"/assessments/{aid}/versions").json["items"]]
    assert changes == ["assessment.created", "assessment.deleted"]
    resp = client.client.simulate_delete(f"/assessments/{aid}", headers=client.headers())
    assert resp.status_code == 404


def test_filters_and_paging(client):
    policy = client.policy()
    a = client.assessment(assessor="dave", due_date="2030-03-01", policies=[policy["id"]])
    b = client.assessment(assessor="erin", due_date="2030-06-01")
    c = client.assessment(assessor="dave", due_date="2030-09-01", result="effective")
    _move(client, b["id"], "in_progress")

    def ids(**params):
        resp = client.read("/assessments", params=params)
        assert resp.status_code == 200, resp.text
        return [x["id"] for x in resp.json["items"]]

    assert ids() == [c["id"], b["id"], a["id"]]
    assert ids(assessor="dave") == [c["id"], a["id"]]
    assert ids(status="in_progress") == [b["id"]]
    assert ids(policy=policy["id"]) == [a["id"]]
    assert ids(result="effective") == [c["id"]]
    assert ids(due_after="2030-06-01") == [c["id"], b["id"]]
    assert ids(due_before="2030-06-01", due_after="2030-04-01") == [b["id"]]

    seen, cursor = [], None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = client.read("/assessments", params=params).json
        seen += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [c["id"], b["id"], a["id"]]

    for bad in ({"status": "done"}, {"due_after": "soon"}, {"policy": "x"}, {"cursor": "zz"}):
        resp = client.read("/assessments", params=bad)
        assert resp.status_code == 400, (bad, resp.text)
        assert resp.json["title"] and resp.json["description"]


def test_another_tenant_sees_nothing(client):
    aid = client.assessment()["id"]
    other = {"tenant": "someone-else"}
    headers = client.headers("admin", **other)
    assert client.client.simulate_get(f"/assessments/{aid}", headers=headers).status_code == 404
    resp = client.client.simulate_get("/assessments", headers=headers)
    assert resp.json["items"] == []
    for path, body in (
        (f"/assessments/{aid}/transitions", {"to": "in_progress"}),
        (f"/assessments/{aid}/assignment", {"assignee": "mallory"}),
    ):
        assert client.client.simulate_post(path, json=body, headers=headers).status_code == 404
    resp = client.client.simulate_patch(
        f"/assessments/{aid}", json={"title": "x"}, headers={**headers, "If-Match": '"1"'}
    )
    assert resp.status_code == 404
    assert client.read(f"/assessments/{aid}").json["version"] == 1


def test_viewers_and_auditors_read_but_do_not_write(client):
    aid = client.assessment()["id"]
    for role in ("viewer", "auditor"):
        assert client.read(f"/assessments/{aid}", role).status_code == 200
        assert client.read("/assessments", role).status_code == 200
        assert client.read(f"/assessments/{aid}/versions", role).status_code == 200
        assert client.post("/assessments", {"title": "x"}, role).status_code == 403
        assert client.move("assessments", aid, "in_progress", role).status_code == 403


def test_every_change_publishes_an_event_on_the_assessment_queue(client, redis_url, namespace):
    import redis

    assessment = _ready(client)
    aid = assessment["id"]
    client.edit(f"/assessments/{aid}", {"findings": "ok"}, version=1)
    _move(client, aid, "in_progress")
    client.post(f"/assessments/{aid}/assignment", {"assignee": "dave"})
    client.client.simulate_delete(f"/assessments/{aid}", headers=client.headers())

    r = redis.Redis.from_url(redis_url)
    events = [
        m["args"][0] for m in published(r, namespace, QUEUE) if m["args"][0]["entity_id"] == aid
    ]
    assert [e["event_type"] for e in events] == [
        "assessment.created",
        "assessment.updated",
        "assessment.status_changed",
        "assessment.assigned",
        "assessment.deleted",
    ]
    assert all(
        m["actor_name"] == "dispatch_event_assessment" for m in published(r, namespace, QUEUE)
    )
    assert events[1]["data"]["changed_fields"] == ["findings"]
    assert events[2]["data"]["old_status"] == "planned"
    assert events[3]["data"]["assignee"] == "dave"
    assert events[3]["data"]["previous_assignee"] == "alice"


def test_a_linked_policy_deleted_since_does_not_block_other_edits(client):
    policy = client.policy()
    aid = client.assessment(policies=[policy["id"]])["id"]
    client.delete(policy["id"])

    resp = client.edit(f"/assessments/{aid}", {"title": "Renamed"}, version=1)
    assert resp.status_code == 200, resp.text
    # A change of the links checks every link.
    links = [client.policy()["id"], policy["id"]]
    resp = client.edit(f"/assessments/{aid}", {"policies": links}, version=2)
    assert resp.status_code == 422 and resp.json["missing"] == [policy["id"]], resp.text
