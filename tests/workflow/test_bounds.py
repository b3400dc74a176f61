"""Input bounds of the admin API: linear-time patterns, string and recipient limits,
paged lists."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import falcon.testing
import pytest

from shared.http import encode_cursor
from tests.workflow.conftest import Outbox
from workflow_service.app import Deps, create_app
from workflow_service.approvals.steps import _duration
from workflow_service.steps.base import StepFailed
from workflow_service.steps.recipients import resolve

from .test_web import DEFINITION, NOTIFY, auth


@pytest.fixture
def client(settings, workflow_db, redis_client):
    app = create_app(settings, Deps(db=workflow_db, broker=Outbox(), redis=redis_client))
    return falcon.testing.TestClient(app)


#: 150 KB of what made the old due_in pattern backtrack for minutes.
HOSTILE = [
    "1" + " " * 150_000 + "x",
    " " * 150_000,
    "1" * 150_000 + "x",
    "1 " * 75_000,
    "\t" * 150_000 + "1",
]


def _definition(**step_options):
    return {**DEFINITION, "steps": [{**NOTIFY, **step_options}]}


def _approval(**options):
    step = {"kind": "require_approval", "approvers": ["user:carol"], **options}
    return {**DEFINITION, "steps": [step]}


@pytest.mark.parametrize("value", HOSTILE, ids=["spaces-x", "spaces", "digits-x", "pairs", "tabs"])
def test_due_in_is_matched_in_linear_time(value):
    started = time.monotonic()
    with pytest.raises(ValueError):
        _duration(value)
    assert time.monotonic() - started < 0.05


def test_the_old_due_in_pattern_really_was_slow():
    # Guards the test above: the pattern it replaced needs far longer on far less.
    old = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
    started = time.monotonic()
    old.match("1" + " " * 5_000 + "x")
    assert time.monotonic() - started > 0.05


@pytest.mark.parametrize("value", ["90", "90s", " 30 m ", "4h", "2d", "2 d"])
def test_due_in_still_reads_durations(value):
    assert _duration(value) in (90, 1800, 14400, 172800)


def test_a_hostile_due_in_body_is_a_quick_422(client):
    started = time.monotonic()
    for value in HOSTILE[:2]:
        resp = client.simulate_post("/workflows", json=_approval(due_in=value), headers=auth())
        assert resp.status_code == 422
        assert any(e["field"] == "steps.0.due_in" for e in resp.json["errors"])
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        (_definition(body="x" * 10_001), "steps.0.body"),
        (_definition(subject="x" * 301), "steps.0.subject"),
        (_definition(recipients=["user:" + "b" * 300]), "steps.0.recipients.0"),
        (_definition(recipients=[f"user:u{i}" for i in range(101)]), "steps.0.recipients"),
        (_definition(channels=["x" * 100]), "steps.0.channels.0"),
        (
            {**DEFINITION, "steps": [{**NOTIFY, "name": "n" * 201}]},
            "steps.0.name",
        ),
        (
            {**DEFINITION, "steps": [{"kind": "k" * 100_000}]},
            "steps.0.kind",
        ),
        (
            {
                **DEFINITION,
                "steps": [{"kind": "create_task", "role": "r" * 100, "title": "t"}],
            },
            "steps.0.role",
        ),
        (
            {
                **DEFINITION,
                "steps": [{"kind": "create_task", "role": "editor", "title": "t", "x": "y"}],
            },
            "steps.0.x",
        ),
        (_approval(escalate_to=["user:" + "e" * 20_000]), "steps.0.escalate_to.0"),
        (
            {**DEFINITION, "conditions": [{"field": "title", "op": "eq", "value": "v" * 1001}]},
            "conditions.0",
        ),
        (
            {
                **DEFINITION,
                "conditions": [{"field": "title", "op": "in", "value": list(range(101))}],
            },
            "conditions.0",
        ),
        ({**DEFINITION, "name": "n" * 201}, "name"),
    ],
    ids=[
        "body",
        "subject",
        "recipient",
        "101-recipients",
        "channel",
        "step-name",
        "kind",
        "role",
        "unknown-option",
        "escalate-to",
        "condition-value",
        "condition-list",
        "workflow-name",
    ],
)
def test_every_string_option_is_bounded_and_named(client, definition, field):
    resp = client.simulate_post("/workflows", json=definition, headers=auth())
    assert resp.status_code == 422, resp.text
    assert {"title", "description"} <= set(resp.json)
    fields = [e["field"] for e in resp.json["errors"]]
    assert field in fields, fields
    # The answer does not echo a huge value back.
    assert len(resp.text) < 5_000


def test_a_role_that_expands_to_more_than_100_people_fails_the_step():
    class Crowd:
        def users_with_role(self, tenant_id, role):
            return [f"u{i}" for i in range(101)]

    ctx = SimpleNamespace(
        directory=Crowd(),
        execution=SimpleNamespace(tenant_id="acme"),
        trigger=SimpleNamespace(data={}),
    )
    with pytest.raises(StepFailed, match="more than 100"):
        resolve(["role:editor"], ctx)
    addresses, _ = resolve([f"user:u{i}" for i in range(100)], ctx)
    assert len(addresses) == 100


def _pages(client, path, limit):
    items, cursor, pages = [], None, 0
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        resp = client.simulate_get(path, params=params, headers=auth(roles=("viewer",)))
        assert resp.status_code == 200, resp.text
        assert len(resp.json["items"]) <= limit
        items.extend(resp.json["items"])
        pages += 1
        cursor = resp.json["next_cursor"]
        if cursor is None:
            return items, pages


def test_workflows_are_listed_in_pages(client):
    created = []
    for i in range(5):
        body = {**DEFINITION, "name": f"wf {i}"}
        resp = client.simulate_post("/workflows", json=body, headers=auth())
        assert resp.status_code == 201
        created.append(resp.json["id"])

    items, pages = _pages(client, "/workflows", 2)

    assert pages >= 3
    assert sorted(w["id"] for w in items) == sorted(created)
    assert [w["id"] for w in items] == created[::-1]  # newest first


def test_workflow_versions_are_listed_in_pages(client):
    resp = client.simulate_post("/workflows", json=DEFINITION, headers=auth())
    workflow_id = resp.json["id"]
    for i in range(4):
        version = client.simulate_get(f"/workflows/{workflow_id}", headers=auth()).json["version"]
        resp = client.simulate_patch(
            f"/workflows/{workflow_id}",
            json={"name": f"renamed {i}", "version": version},
            headers=auth(),
        )
        assert resp.status_code == 200, resp.text

    items, pages = _pages(client, f"/workflows/{workflow_id}/versions", 2)

    assert pages == 3
    assert [v["version"] for v in items] == [5, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJ4IjoxfQ"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1000"}, "limit"),
        ({"limit": "many"}, "limit"),
    ],
)
def test_bad_paging_parameters_are_400(client, params, name):
    resp = client.simulate_post("/workflows", json=DEFINITION, headers=auth())
    workflow_id = resp.json["id"]
    for path in ("/workflows", f"/workflows/{workflow_id}/versions"):
        resp = client.simulate_get(path, params=params, headers=auth())
        assert resp.status_code == 400, resp.text
        assert name in resp.json["title"]


@pytest.mark.parametrize("ident", ["not-an-id", "1" * 40, "\u00b2"])
def test_a_version_cursor_naming_no_integer_id_is_400(client, ident):
    # A version's id is an integer (PostgreSQL refused to compare it with other text: 500).
    resp = client.simulate_post("/workflows", json=DEFINITION, headers=auth())
    cursor = encode_cursor({"c": "2026-01-01T00:00:00", "i": ident})
    resp = client.simulate_get(
        f"/workflows/{resp.json['id']}/versions", params={"cursor": cursor}, headers=auth()
    )
    assert resp.status_code == 400, resp.text
    assert "cursor" in resp.json["title"]


def test_a_nul_in_a_path_is_400(client):
    # PostgreSQL refuses NUL in text: a user id holding one was a 500 there.
    for method in ("GET", "DELETE"):
        resp = client.simulate_request(method, "/users/a%00b", headers=auth(roles=("admin",)))
        assert resp.status_code == 400, resp.text
        assert "NUL" in resp.json["description"]


def _hostile_inputs(size: int):
    """Inputs of about ``size`` characters that make super-linear patterns backtrack."""
    yield "1" + " " * size + "x"
    yield " " * size
    yield "1" * size + "x"
    yield "\t" * size + "1"
    for unit in ("1 ", "a", "a.", "a@", "@a.", "%(", "%0", "http://", "-", "a,", "{a:"):
        yield unit * (size // len(unit)) + "\x00"


def _cost(check, text: str) -> float:
    """The fastest of three runs: the least noisy measure on a busy machine."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        check(text)
        best = min(best, time.perf_counter() - started)
    return best


def test_every_pattern_that_reads_user_input_is_linear():
    from api_service.resources import _EVENT_ID
    from shared.auth import CLAIM_ID
    from workflow_service.notifications.signing import _DELIVERY_ID
    from workflow_service.steps import webhook_urls
    from workflow_service.templating import _PRINTF_SPEC
    from workflow_service.users.schemas import UserRecord, is_email_address

    patterns = [
        _EVENT_ID.match,
        CLAIM_ID.fullmatch,
        _DELIVERY_ID.fullmatch,
        webhook_urls._LABEL.fullmatch,
        webhook_urls._WORD.fullmatch,
        webhook_urls._CONTROL_OR_SPACE.search,
        lambda text: webhook_urls._URL_IN_TEXT.sub("x", text),
        lambda text: sum(1 for _ in _PRINTF_SPEC.finditer(text)),
        is_email_address,
        lambda text: UserRecord._split_roles(text),
    ]
    # Linear time, measured as growth rather than against a clock: four times the
    # input costs about four times as much; a quadratic pattern costs sixteen times.
    # The floor keeps a loaded machine's stalls out of it: a super-linear pattern on
    # 150,000 characters costs seconds, far above it.
    for small, large in zip(_hostile_inputs(37_500), _hostile_inputs(150_000), strict=True):
        for check in patterns:
            small_cost, large_cost = _cost(check, small), _cost(check, large)
            assert large_cost < max(0.25, 8 * small_cost), (check, large[:10], small_cost)
