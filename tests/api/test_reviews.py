"""Review cycles: approving or publishing schedules a policy's next review, and a
periodic review (by a reviewer who does not own it) records its outcome, moves the
date one period on, bumps the version and publishes policy.reviewed."""

from __future__ import annotations

from datetime import date

import pytest

from api_service.review_cycle import add_months, next_review
from shared.http import encode_cursor
from tests.api.helpers import (
    ApiClient,
    FakeClock,
    auth,
    error_names,
    published_events,
    unique_tenant,
)

TODAY = date(2030, 1, 1)  # FakeClock's day


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(api_settings, make_app, clock) -> ApiClient:
    app, _ = make_app(api_settings, clock=clock)
    return ApiClient(app, unique_tenant())


def as_user(api, sub: str, *roles: str, tenant: str | None = None) -> dict:
    return auth(*roles, sub=sub, tenant=tenant or api.tenant)


def move(api, policy_id: str, to: str, sub: str, *roles: str) -> dict:
    resp = api.client.simulate_post(
        f"/policies/{policy_id}/transitions", json={"to": to}, headers=as_user(api, sub, *roles)
    )
    assert resp.status_code == 200, resp.text
    return resp.json


def in_force(api, status: str = "approved", **fields) -> dict:
    """A policy owned by olivia, approved by bob (and published by olivia)."""
    body = {"title": "Access control", "policy_type": "security", **fields}
    resp = api.client.simulate_post(
        "/policies", json=body, headers=as_user(api, "olivia", "editor")
    )
    assert resp.status_code == 201, resp.text
    policy = resp.json
    move(api, policy["id"], "in_review", "olivia", "editor")
    policy = move(api, policy["id"], "approved", "bob", "approver")
    if status == "published":
        policy = move(api, policy["id"], "published", "olivia", "editor")
    return policy


def review(api, policy_id: str, sub: str = "rita", roles=("approver",), headers=None, **body):
    return api.client.simulate_post(
        f"/policies/{policy_id}/reviews",
        json={"outcome": "no_change", **body},
        headers={**as_user(api, sub, *roles), **(headers or {})},
    )


def reviews(api, policy_id: str, roles=("viewer",), **params):
    return api.client.simulate_get(
        f"/policies/{policy_id}/reviews", params=params, headers=as_user(api, "vera", *roles)
    )


def events_of(redis_client, namespace, policy_id: str, event_type: str) -> list[dict]:
    return [
        e
        for e in published_events(redis_client, namespace)
        if e["entity_id"] == policy_id and e["event_type"] == event_type
    ]


# ------------------------------------------------------------------ the schedule


def test_review_periods_are_calendar_months():
    assert next_review("monthly", date(2030, 1, 31)) == date(2030, 2, 28)
    assert next_review("quarterly", date(2030, 11, 30)) == date(2031, 2, 28)
    assert next_review("semiannual", date(2030, 8, 31)) == date(2031, 2, 28)
    assert next_review("annual", date(2032, 2, 29)) == date(2033, 2, 28)
    assert next_review("biennial", TODAY) == date(2032, 1, 1)
    assert next_review(None, TODAY) is None
    assert add_months(date(2030, 12, 15), 1) == date(2031, 1, 15)


def test_approving_and_publishing_set_the_next_review_date(api, clock, redis_client, namespace):
    # Given a quarterly policy with no review date, sent to review
    resp = api.client.simulate_post(
        "/policies",
        json={"title": "Backups", "policy_type": "it", "review_frequency": "quarterly"},
        headers=as_user(api, "olivia", "editor"),
    )
    pid = resp.json["id"]
    assert move(api, pid, "in_review", "olivia", "editor")["next_review_date"] is None

    # When bob approves it, the next review is three months from today
    approved = move(api, pid, "approved", "bob", "approver")
    assert approved["next_review_date"] == "2030-04-01"
    # and the event's snapshot says so
    [event] = [
        e
        for e in events_of(redis_client, namespace, pid, "policy.status_changed")
        if e["data"]["status"] == "approved"
    ]
    assert event["data"]["next_review_date"] == "2030-04-01"

    # Publishing it ten days later starts the cycle from that day
    clock.advance(days=10)
    published = move(api, pid, "published", "olivia", "editor")
    assert published["next_review_date"] == "2030-04-11"
    assert published["version"] == approved["version"] + 1


def test_a_policy_without_a_frequency_keeps_its_review_date(api):
    policy = in_force(api, next_review_date="2031-06-30")
    assert policy["next_review_date"] == "2031-06-30"


# -------------------------------------------------------------------- reviewing


def test_a_review_moves_the_date_bumps_the_version_and_publishes_an_event(
    api, clock, redis_client, namespace
):
    # Given a published annual policy
    policy = in_force(api, "published", review_frequency="annual")
    assert policy["next_review_date"] == "2031-01-01"
    # When rita reviews it 300 days later and asks for changes
    clock.advance(days=300)
    resp = review(api, policy["id"], outcome="changes_required", comment="Update MFA section")

    # Then the review is recorded with the date it set (a year from the review)
    assert resp.status_code == 201, resp.text
    body = resp.json
    assert body["outcome"] == "changes_required" and body["reviewed_by"] == "rita"
    assert body["comment"] == "Update MFA section"
    assert body["next_review_date"] == "2031-10-28"
    assert body["policy_version"] == policy["version"] + 1
    assert body["policy_id"] == policy["id"] and body["reviewed_at"].startswith("2030-10-28")
    assert resp.headers["etag"] == f'"{policy["version"] + 1}"'
    # and the policy keeps its status, with the new date and version
    now = api.get(policy["id"]).json
    assert now["status"] == "published"
    assert now["next_review_date"] == "2031-10-28" and now["version"] == body["policy_version"]
    assert now["updated_by"] == "rita"
    # and its versions end with the review
    versions = api.client.simulate_get(
        f"/policies/{policy['id']}/versions", headers=as_user(api, "vera", "viewer")
    ).json["items"]
    assert versions[-1]["change"] == "policy.reviewed"
    assert versions[-1]["changed_by"] == "rita"
    assert versions[-1]["snapshot"]["next_review_date"] == "2031-10-28"
    # and policy.reviewed was published with the job the answer names
    [event] = events_of(redis_client, namespace, policy["id"], "policy.reviewed")
    assert [job["id"] for job in body["jobs"]] == [event["event_id"]]
    assert event["actor"] == "rita" and event["tenant_id"] == api.tenant
    assert event["data"]["outcome"] == "changes_required"
    assert event["data"]["comment"] == "Update MFA section"
    assert event["data"]["reviewed_by"] == "rita"
    assert event["data"]["next_review_date"] == "2031-10-28"
    assert event["data"]["status"] == "published" and event["data"]["version"] == now["version"]


def test_an_approved_policy_is_reviewed_and_one_without_frequency_loses_its_date(api):
    policy = in_force(api, next_review_date="2030-02-01")
    resp = review(api, policy["id"], sub="admin-ann", roles=("admin",))
    assert resp.status_code == 201, resp.text
    # Without a frequency there is no next review until someone sets one
    assert resp.json["next_review_date"] is None
    assert api.get(policy["id"]).json["next_review_date"] is None
    assert api.get(policy["id"]).json["status"] == "approved"


@pytest.mark.parametrize("status", ["draft", "in_review", "archived"])
def test_only_policies_in_force_are_reviewed(api, status):
    resp = api.client.simulate_post(
        "/policies",
        json={"title": "Draft", "policy_type": "it", "review_frequency": "monthly"},
        headers=as_user(api, "olivia", "editor"),
    )
    pid = resp.json["id"]
    if status == "in_review":
        move(api, pid, "in_review", "olivia", "editor")
    if status == "archived":
        pid = in_force(api, "published", review_frequency="monthly")["id"]
        move(api, pid, "archived", "olivia", "editor")
    before = api.get(pid).json

    resp = review(api, pid)
    assert resp.status_code == 409, resp.text
    assert error_names(resp, status)
    assert resp.json["title"] == "Review not allowed"
    assert api.get(pid).json["version"] == before["version"]


def test_the_owner_may_not_review_their_own_policy(api):
    policy = in_force(api, review_frequency="monthly")
    # olivia owns it; even as an approver or admin she may not review it
    for roles in (("approver",), ("admin",)):
        resp = review(api, policy["id"], sub="olivia", roles=roles)
        assert resp.status_code == 403, resp.text
        assert error_names(resp, "olivia owns this policy", "someone else")
    assert reviews(api, policy["id"]).json["items"] == []
    assert api.get(policy["id"]).json["version"] == policy["version"]


@pytest.mark.parametrize("roles", [("editor",), ("viewer",), ("auditor",), ("service",)])
def test_only_approvers_and_admins_record_reviews(api, roles):
    policy = in_force(api, review_frequency="monthly")
    headers = (
        auth("service", sub="workflow-service", tenant=api.tenant)
        if roles == ("service",)
        else as_user(api, "rita", *roles)
    )
    resp = api.client.simulate_post(
        f"/policies/{policy['id']}/reviews", json={"outcome": "no_change"}, headers=headers
    )
    assert resp.status_code == 403, resp.text
    assert error_names(resp, "approver")
    assert api.get(policy["id"]).json["version"] == policy["version"]


def test_bad_review_requests_are_4xx(api):
    policy = in_force(api, review_frequency="monthly")
    assert review(api, policy["id"], outcome="looks_fine").status_code == 422
    assert review(api, policy["id"], comment="x" * 2001).status_code == 422
    assert review(api, policy["id"], extra=1).status_code == 422
    resp = api.client.simulate_post(
        "/policies/not-a-uuid/reviews",
        json={"outcome": "no_change"},
        headers=as_user(api, "rita", "approver"),
    )
    assert resp.status_code == 400
    stale = review(api, policy["id"], headers={"If-Match": f'"{policy["version"] - 1}"'})
    assert stale.status_code == 412 and stale.json["current_version"] == policy["version"]
    assert (
        review(api, policy["id"], headers={"If-Match": f'"{policy["version"]}"'}).status_code == 201
    )


def test_another_tenants_policy_is_not_found(api):
    policy = in_force(api, review_frequency="monthly")
    other = as_user(api, "rita", "approver", tenant="someone-else")
    resp = api.client.simulate_post(
        f"/policies/{policy['id']}/reviews", json={"outcome": "no_change"}, headers=other
    )
    assert resp.status_code == 404
    resp = api.client.simulate_get(
        f"/policies/{policy['id']}/reviews", headers=as_user(api, "vera", "auditor", tenant="x")
    )
    assert resp.status_code == 404


def test_an_idempotency_key_replays_the_first_review(api, redis_client, namespace):
    policy = in_force(api, review_frequency="quarterly")
    key = {"Idempotency-Key": "review-2030-q1"}
    first = review(api, policy["id"], headers=key, comment="ok")
    again = review(api, policy["id"], headers=key, comment="ok")
    assert first.status_code == again.status_code == 201
    assert again.json == first.json
    assert len(reviews(api, policy["id"]).json["items"]) == 1
    assert len(events_of(redis_client, namespace, policy["id"], "policy.reviewed")) == 1
    assert api.get(policy["id"]).json["version"] == policy["version"] + 1
    # The same key for another request is refused
    other = review(api, policy["id"], headers=key, outcome="changes_required")
    assert other.status_code == 422 and error_names(other, "Idempotency-Key")
    # and so is a transition's key used for a review
    api.client.simulate_post(
        f"/policies/{policy['id']}/transitions",
        json={"to": "published"},
        headers={**as_user(api, "rita", "editor", "approver"), "Idempotency-Key": "k-move"},
    )
    reused = review(
        api,
        policy["id"],
        sub="rita",
        roles=("editor", "approver"),
        headers={"Idempotency-Key": "k-move"},
    )
    assert reused.status_code == 422


def test_reviews_are_listed_newest_first_page_by_page(api, clock):
    policy = in_force(api, "published", review_frequency="monthly")
    for n in range(5):
        clock.advance(days=30)
        assert review(api, policy["id"], comment=f"review {n}").status_code == 201

    # The auditor reads them two at a time, newest first
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        resp = reviews(api, policy["id"], roles=("auditor",), **params)
        assert resp.status_code == 200, resp.text
        assert len(resp.json["items"]) <= 2
        seen += [item["comment"] for item in resp.json["items"]]
        cursor = resp.json["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"review {n}" for n in reversed(range(5))]
    # each moved the date on from its own day
    first = reviews(api, policy["id"]).json["items"][0]
    assert first["next_review_date"] == "2030-06-30"  # reviewed 2030-05-31 (150 days on)
    assert first["policy_version"] == api.get(policy["id"]).json["version"]

    for bad in (
        "nope",
        _cursor(1, 2),
        _cursor("yesterday", 2),
        _cursor("2030-01-01T00:00:00", "2"),
        _cursor("2030-01-01T00:00:00", True),
    ):
        resp = reviews(api, policy["id"], cursor=bad)
        assert resp.status_code == 400, (bad, resp.text)
    huge = reviews(api, policy["id"], cursor=_cursor("2030-01-01T00:00:00", 2**70))
    assert huge.status_code == 400
    assert reviews(api, policy["id"], limit="0").status_code == 400


def _cursor(t: str, i) -> str:
    return encode_cursor({"t": t, "i": i})
