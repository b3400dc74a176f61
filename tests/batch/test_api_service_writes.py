"""The api's side of imports: the workflow service creates and edits policies only for
a named person (``X-Initiator``), who is on record as the author, with the service as
the version's ``via``; its Idempotency-Key replays the first answer."""

from __future__ import annotations

import falcon.testing

from shared.auth import issue_service_token
from tests.batch.conftest import TENANT, auth
from tests.conftest import SERVICE_TOKEN_SECRET

SERVICE = {"Authorization": f"Bearer {issue_service_token(SERVICE_TOKEN_SECRET, TENANT)}"}
BODY = {"title": "Imported", "policy_type": "security"}


def post(api_app, headers, body=BODY):
    return falcon.testing.simulate_post(api_app, "/policies", json=body, headers=headers)


def test_the_service_creates_for_the_person_it_names(api_app):
    headers = {**SERVICE, "X-Initiator": "edith", "Idempotency-Key": "import-1-row-2"}
    first = post(api_app, headers)
    assert first.status_code == 201, first.text
    assert (first.json["created_by"], first.json["owner"]) == ("edith", "edith")
    again = post(api_app, headers)
    assert again.status_code == 201 and again.json["id"] == first.json["id"]
    versions = falcon.testing.simulate_get(
        api_app, f"/policies/{first.json['id']}/versions", headers=auth("v", ["viewer"])
    ).json["items"]
    assert [(v["changed_by"], v["via"]) for v in versions] == [("edith", "workflow-service")]
    listed = falcon.testing.simulate_get(api_app, "/policies", headers=auth("v", ["viewer"]))
    assert len(listed.json["items"]) == 1


def test_the_service_edits_for_the_person_it_names(api_app):
    created = post(api_app, auth("olga", ["editor"])).json
    patched = falcon.testing.simulate_patch(
        api_app,
        f"/policies/{created['id']}",
        json={"title": "Renamed"},
        headers={**SERVICE, "X-Initiator": "edith", "If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json["updated_by"], patched.json["created_by"]) == ("edith", "olga")


def test_without_a_person_the_service_writes_nothing(api_app):
    answer = post(api_app, SERVICE)
    assert answer.status_code == 400 and "X-Initiator" in answer.json["description"]
    created = post(api_app, auth("olga", ["editor"])).json
    patched = falcon.testing.simulate_patch(
        api_app, f"/policies/{created['id']}", json={"title": "x"}, headers=SERVICE
    )
    assert patched.status_code == 400
    listed = falcon.testing.simulate_get(api_app, "/policies", headers=auth("v", ["viewer"]))
    assert [p["title"] for p in listed.json["items"]] == ["Imported"]


def test_a_person_may_not_name_someone_else(api_app):
    answer = post(api_app, {**auth("olga", ["editor"]), "X-Initiator": "edith"})
    assert answer.status_code == 403
