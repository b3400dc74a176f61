"""The authorization matrix: every route and method of both services, read from their
``/openapi.json``, against no token, each role alone, and another tenant's user.

The expected answers are the table :data:`EXPECTED`, one row per (service, method,
path). A route the OpenAPI documents have and the table lacks fails
:func:`test_every_documented_route_has_a_row` (and a row for a route that no longer
exists fails it too), so a new route cannot ship without someone deciding who may call
it.

Both apps run in-process on one migrated database each and real Redis. Every path
parameter names a real row of tenant ``acme`` (a policy, a workflow, an execution, an
approval, a task, a notification, a user, a job record), so a 404 in the table is the
tenant or ownership check answering, not a missing row. Write routes get a body that
passes no validation, or a valid one for a stale ``If-Match`` where validation comes
before the tenant check: a caller who is let in gets a 4xx and the seeded rows stay as
they are, so no cell depends on another's order. Actions without a body (status
changes, cancel) act on rows of their own; deciding an approval needs a valid decision,
so each persona decides an approval of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import httpx
import pytest
import redis

from api_service.app import build_deps as build_api_deps
from api_service.app import create_app as create_api_app
from api_service.migrations import MIGRATIONS as API_MIGRATIONS
from api_service.settings import ApiSettings
from shared.auth import issue_service_token, issue_token
from shared.db import migrate, open_database
from tests.conftest import JWT_SECRET, SERVICE_TOKEN_SECRET
from tests.support import poll
from workflow_service.apiclient import ApiClient
from workflow_service.app import Deps as WorkflowDeps
from workflow_service.app import create_app as create_workflow_app
from workflow_service.approvals.models import ApprovalRequest
from workflow_service.audit import chain as audit_chain
from workflow_service.db import database, init_database
from workflow_service.engine import ExecutionFailed
from workflow_service.migrations import all_migrations
from workflow_service.models import Notification, Task
from workflow_service.notifications.models import Delivery
from workflow_service.runtime import build_engine
from workflow_service.settings import WorkflowSettings
from workflow_service.storage import FileStore
from workflow_service.users.directory import save_user

TENANT, OTHER_TENANT = "acme", "globex"

#: Allowed: any answer but 401, 403 and 404 (and no 5xx). The minimal body may still be
#: refused as invalid (422), or be for a stale version (412), or the row be in a state
#: the action does not apply to (409). Not 404: every path names a row that exists, so
#: a 404 is a tenant or ownership check refusing the caller.
OK = "ok"
REFUSED = (401, 403, 404)

#: The columns of the table, in order (headed none view edit appr audt admn oper serv othr).
#: Each role is held alone by a user of ``acme`` named ``acme-<role>``; ``service`` is
#: a service token (its own key and audience) for ``acme``; ``other`` is globex's
#: ``globex-gina`` with admin, editor and approver, calling on acme's rows.
PERSONAS = (
    "none",
    "viewer",
    "editor",
    "approver",
    "auditor",
    "admin",
    "operator",
    "service",
    "other",
)
ROLE_PERSONAS = ("viewer", "editor", "approver", "auditor", "admin", "operator")

# Reading the table: the api answers the service token on every route that reads or
# moves policies; the workflow service takes no service tokens at all (401). Tasks and
# notifications are their assignee's and recipient's (acme-approver); the approval read
# is its approvers', its entity's owner's and admins'; deciding one needs a slot in it
# and a role that may approve (every persona has a slot in its own approval). Operators
# hold no tenant role: they see queues, every tenant's jobs and /metrics (and, like any
# signed-in caller, their own empty inbox and approvals). Auditors read everything of
# their tenant (policies, workflows, executions, every approval, deliveries, users, jobs,
# schedules) and change nothing; they do not see the webhook secret. Tenant settings are read by
# the tenant's people and changed by its admin; another tenant's admin reaches only its
# own (OK on collections and settings means: its own rows, see the leak test below).
# fmt: off
API: dict[tuple[str, str], tuple] = {
    # method, path                                      none view edit appr audt admn oper serv othr
    ("GET", "/policies"):                              (401, OK,  OK,  OK,  OK,  OK,  403, OK,  OK),
    # The workflow service creates and edits policies for the person it names in
    # X-Initiator (bulk imports); without one it gets a 400.
    ("POST", "/policies"):                             (401, 403, OK,  403, 403, OK,  403, OK,  OK),
    ("GET", "/policies/{policy_id}"):                  (401, OK,  OK,  OK,  OK,  OK,  403, OK,  404),
    ("PATCH", "/policies/{policy_id}"):                (401, 403, OK,  403, 403, OK,  403, OK,  404),
    ("DELETE", "/policies/{policy_id}"):               (401, 403, OK,  403, 403, OK,  403, 403, 404),
    ("POST", "/policies/{policy_id}/transitions"):     (401, 403, OK,  OK,  403, OK,  403, OK,  404),
    ("GET", "/policies/{policy_id}/versions"):         (401, OK,  OK,  OK,  OK,  OK,  403, OK,  404),
    ("GET", "/policies/{policy_id}/refusals"):         (401, OK,  OK,  OK,  OK,  OK,  403, OK,  404),
    # Review cycles: approvers (and admins) record a policy's periodic review; its
    # owner never does (tested in tests/api/test_reviews.py); the tenant's people read.
    ("POST", "/policies/{policy_id}/reviews"):         (401, 403, 403, OK,  403, OK,  403, 403, 404),
    ("GET", "/policies/{policy_id}/reviews"):          (401, OK,  OK,  OK,  OK,  OK,  403, OK,  404),
    # Assessments and evidence: read like policies (auditors too); editors write;
    # approvers and the service move them (who decides is tested in tests/api); editors
    # and the service assign them, policies included; evidence files: editors upload.
    ("GET", "/assessments"):                           (401, OK,  OK,  OK,  OK,  OK,  403, OK,  OK),
    ("POST", "/assessments"):                          (401, 403, OK,  403, 403, OK,  403, 403, OK),
    ("GET", "/assessments/{assessment_id}"):           (401, OK,  OK,  OK,  OK,  OK,  403, OK,  404),
    ("PATCH", "/assessments/{assessment_id}"):         (401, 403, OK,  403, 403, OK,  403, 403, 404),
    ("DELETE", "/assessments/{assessment_id}"):        (401, 403, OK,  403, 403, OK,  403, 403, 404),
    ("POST", "/assessments/{assessment_id}/transitions"): (401, 403, OK, OK, 403, OK, 403, OK, 404),
    ("GET", "/assessments/{assessment_id}/versions"):  (401, OK,  OK,  OK,  OK,  OK,  403, OK,  404),
    ("GET", "/assessments/{assessment_id}/refusals"):  (401, OK,  OK,  OK,  OK,  OK,  403, OK,  404),
    ("POST", "/assessments/{assessment_id}/assignment"): (401, 403, OK, 403, 403, OK, 403, OK, 404),
    ("GET", "/evidence"):                              (401, OK,  OK,  OK,  OK,  OK,  403, OK,  OK),
    ("POST", "/evidence"):                             (401, 403, OK,  403, 403, OK,  403, 403, OK),
    ("GET", "/evidence/{evidence_id}"):                (401, OK,  OK,  OK,  OK,  OK,  403, OK,  404),
    ("PATCH", "/evidence/{evidence_id}"):              (401, 403, OK,  403, 403, OK,  403, 403, 404),
    ("DELETE", "/evidence/{evidence_id}"):             (401, 403, OK,  403, 403, OK,  403, 403, 404),
    ("POST", "/evidence/{evidence_id}/transitions"):   (401, 403, OK,  OK,  403, OK,  403, OK,  404),
    ("GET", "/evidence/{evidence_id}/versions"):       (401, OK,  OK,  OK,  OK,  OK,  403, OK,  404),
    ("GET", "/evidence/{evidence_id}/refusals"):       (401, OK,  OK,  OK,  OK,  OK,  403, OK,  404),
    ("POST", "/evidence/{evidence_id}/assignment"):    (401, 403, OK,  403, 403, OK,  403, OK,  404),
    ("PUT", "/evidence/{evidence_id}/file"):           (401, 403, OK,  403, 403, OK,  403, 403, 404),
    ("GET", "/evidence/{evidence_id}/file"):           (401, OK,  OK,  OK,  OK,  OK,  403, OK,  404),
    ("POST", "/policies/{policy_id}/assignment"):      (401, 403, OK,  403, 403, OK,  403, OK,  404),
    ("GET", "/tenant-settings"):                       (401, OK,  OK,  OK,  OK,  OK,  403, 403, OK),
    ("PATCH", "/tenant-settings"):                     (401, 403, 403, 403, 403, OK,  403, 403, OK),
    ("GET", "/jobs"):                                  (401, OK,  OK,  OK,  OK,  OK,  403, OK,  OK),
    ("GET", "/jobs/{job_id}"):                         (401, OK,  OK,  OK,  OK,  OK,  403, OK,  404),
    ("GET", "/healthz"):                               (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK),
    ("GET", "/readyz"):                                (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK),
    ("GET", "/metrics"):                               (401, 403, 403, 403, 403, 403, OK,  403, 403),
    ("GET", "/openapi.json"):                          (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK),
}

WORKFLOW: dict[tuple[str, str], tuple] = {
    # method, path                                      none view edit appr audt admn oper serv othr
    ("GET", "/workflows"):                             (401, OK,  OK,  OK,  OK,  OK,  403, 401, OK),
    ("POST", "/workflows"):                            (401, 403, OK,  403, 403, OK,  403, 401, OK),
    ("GET", "/workflows/{workflow_id}"):               (401, OK,  OK,  OK,  OK,  OK,  403, 401, 404),
    ("PATCH", "/workflows/{workflow_id}"):             (401, 403, OK,  403, 403, OK,  403, 401, 404),
    ("DELETE", "/workflows/{workflow_id}"):            (401, 403, OK,  403, 403, OK,  403, 401, 404),
    ("GET", "/workflows/{workflow_id}/versions"):      (401, OK,  OK,  OK,  OK,  OK,  403, 401, 404),
    ("POST", "/workflows/{workflow_id}/run"):          (401, 403, OK,  403, 403, OK,  403, 401, 404),
    ("POST", "/workflows/{workflow_id}/activate"):     (401, 403, OK,  403, 403, OK,  403, 401, 404),
    ("POST", "/workflows/{workflow_id}/deactivate"):   (401, 403, OK,  403, 403, OK,  403, 401, 404),
    ("POST", "/workflows/{workflow_id}/archive"):      (401, 403, OK,  403, 403, OK,  403, 401, 404),
    ("POST", "/workflows/from-template/{template}"):   (401, 403, OK,  403, 403, OK,  403, 401, OK),
    ("GET", "/workflows/templates"):                   (401, OK,  OK,  OK,  OK,  OK,  403, 401, OK),
    ("GET", "/executions"):                            (401, OK,  OK,  OK,  OK,  OK,  403, 401, OK),
    ("GET", "/executions/{execution_id}"):             (401, OK,  OK,  OK,  OK,  OK,  403, 401, 404),
    ("POST", "/executions/{execution_id}/cancel"):     (401, 403, OK,  403, 403, OK,  403, 401, 404),
    ("GET", "/approvals"):                             (401, OK,  OK,  OK,  OK,  OK,  OK,  401, OK),
    ("GET", "/approvals/{approval_id}"):               (401, 403, 403, OK,  OK,  OK,  403, 401, 404),
    ("POST", "/approvals/{approval_id}/decision"):     (401, 403, 403, OK,  403, OK,  403, 401, 404),
    ("GET", "/tasks"):                                 (401, OK,  OK,  OK,  OK,  OK,  OK,  401, OK),
    ("POST", "/tasks/{task_id}/complete"):             (401, 404, 404, OK,  404, 404, 404, 401, 404),
    ("GET", "/notifications"):                         (401, OK,  OK,  OK,  OK,  OK,  OK,  401, OK),
    ("POST", "/notifications/{notification_id}/read"): (401, 404, 404, OK,  404, 404, 404, 401, 404),
    ("GET", "/deliveries"):                            (401, 403, OK,  403, OK,  OK,  403, 401, OK),
    ("GET", "/webhook-secret"):                        (401, 403, 403, 403, 403, OK,  403, 401, OK),
    ("POST", "/webhook-secret/rotate"):                (401, 403, 403, 403, 403, OK,  403, 401, OK),
    ("GET", "/users"):                                 (401, 403, 403, 403, OK,  OK,  403, 401, OK),
    ("POST", "/users"):                                (401, 403, 403, 403, 403, OK,  403, 401, OK),
    ("GET", "/users/{user_id}"):                       (401, 403, 403, 403, OK,  OK,  403, 401, 404),
    ("PUT", "/users/{user_id}"):                       (401, 403, 403, 403, 403, OK,  403, 401, OK),
    ("DELETE", "/users/{user_id}"):                    (401, 403, 403, 403, 403, OK,  403, 401, 404),
    ("GET", "/queues"):                                (401, 403, 403, 403, OK,  OK,  OK,  401, OK),
    ("GET", "/jobs"):                                  (401, 403, 403, 403, OK,  OK,  OK,  401, OK),
    ("GET", "/jobs/{job_id}"):                         (401, 403, 403, 403, OK,  OK,  OK,  401, 404),
    ("DELETE", "/jobs/{job_id}"):                      (401, 403, 403, 403, 403, OK,  OK,  401, 404),
    ("POST", "/jobs/{job_id}/retry"):                  (401, 403, 403, 403, 403, OK,  OK,  401, 404),
    ("POST", "/jobs/{job_id}/promote"):                (401, 403, 403, 403, 403, OK,  OK,  401, 404),
    ("POST", "/jobs/retry-failed"):                    (401, 403, 403, 403, 403, OK,  OK,  401, OK),
    ("POST", "/jobs/clean"):                           (401, 403, 403, 403, 403, OK,  OK,  401, OK),
    # A queue is every tenant's: only operators pause and resume it.
    ("POST", "/queues/{name}/pause"):                  (401, 403, 403, 403, 403, 403, OK,  401, 403),
    ("POST", "/queues/{name}/resume"):                 (401, 403, 403, 403, 403, 403, OK,  401, 403),
    ("GET", "/console"):                               (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK),
    ("GET", "/console/{name}"):                        (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK),
    ("GET", "/console/vendor/{name}"):                 (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK),
    ("GET", "/stats"):                                 (401, 403, 403, 403, 403, 403, OK,  401, 403),
    ("GET", "/workers"):                               (401, 403, 403, 403, 403, 403, OK,  401, 403),
    ("GET", "/schedules"):                             (401, 403, 403, 403, OK,  OK,  OK,  401, OK),
    # Stored files: the seeded file is a report (editors, approvers, auditors, admins
    # read reports; which roles read each kind is tested in tests/files/test_web.py).
    ("GET", "/files"):                                 (401, 403, OK,  OK,  OK,  OK,  403, 401, OK),
    ("GET", "/files/{file_id}"):                       (401, 403, OK,  OK,  OK,  OK,  403, 401, 404),
    # Reports: asked for by those who read them (the job only reads the tenant's data).
    ("POST", "/reports"):                              (401, 403, OK,  OK,  OK,  OK,  403, 401, OK),
    # Exports and imports: editors and admins import, auditors read imports and
    # export (their files are read through /files); the seeded import is acme's.
    ("POST", "/exports"):                              (401, 403, OK,  403, OK,  OK,  403, 401, OK),
    ("POST", "/imports"):                              (401, 403, OK,  403, 403, OK,  403, 401, OK),
    ("GET", "/imports/{import_id}"):                   (401, 403, OK,  403, OK,  OK,  403, 401, 404),
    # Audit trail: the tenant's auditors and admins read the log, verify the chain and
    # ask for packages (another tenant's admin: its own chain); nobody else.
    ("GET", "/audit"):                                 (401, 403, 403, 403, OK,  OK,  403, 401, OK),
    ("GET", "/audit/verify"):                          (401, 403, 403, 403, OK,  OK,  403, 401, OK),
    ("POST", "/audit/packages"):                       (401, 403, 403, 403, OK,  OK,  403, 401, OK),
    ("GET", "/healthz"):                               (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK),
    ("GET", "/readyz"):                                (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK),
    ("GET", "/metrics"):                               (401, 403, 403, 403, 403, 403, OK,  401, 403),
    ("GET", "/openapi.json"):                          (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK),
}
# fmt: on
EXPECTED: dict[tuple[str, str, str], tuple] = {
    **{("api", *route): row for route, row in API.items()},
    **{("workflow", *route): row for route, row in WORKFLOW.items()},
}

#: A body no write route accepts: whoever is let in gets a validation error.
INVALID_BODY = {"not_a_field": True}
STALE = {"If-Match": '"999"'}
#: Per route: what to send instead of the defaults (``json``: INVALID_BODY on writes;
#: ``headers``; ``params``).
REQUESTS: dict[tuple[str, str, str], dict] = {
    # Valid, but for a stale version: refused after the role and tenant checks (a body
    # that fails validation would be refused before the tenant check), so nothing changes.
    ("api", "PATCH", "/policies/{policy_id}"): {"json": {"title": "Matrix"}, "headers": STALE},
    ("api", "DELETE", "/policies/{policy_id}"): {"headers": STALE},
    ("api", "POST", "/policies/{policy_id}/transitions"): {
        "json": {"to": "in_review"},
        "headers": STALE,
    },
    # Review cycles: a valid review for a stale version (refused after the role and
    # tenant checks; the seeded policy is not reviewed).
    ("api", "POST", "/policies/{policy_id}/reviews"): {
        "json": {"outcome": "no_change"},
        "headers": STALE,
    },
    # Assessments and evidence: valid changes for a stale version (nothing changes).
    **{
        ("api", method, f"/{collection}/{{{name}_id}}{tail}"): spec
        for collection, name, to in (
            ("assessments", "assessment", "cancelled"),
            ("evidence", "evidence", "rejected"),
        )
        for method, tail, spec in (
            ("PATCH", "", {"json": {"title": "Matrix"}, "headers": STALE}),
            ("DELETE", "", {"headers": STALE}),
            ("POST", "/transitions", {"json": {"to": to}, "headers": STALE}),
            ("POST", "/assignment", {"json": {"assignee": "acme-owner"}, "headers": STALE}),
            ("PUT", "/file", {"headers": STALE}),
        )
        if (collection, tail) != ("assessments", "/file")
    },
    ("api", "POST", "/policies/{policy_id}/assignment"): {
        "json": {"assignee": "acme-owner"},
        "headers": STALE,
    },
    # The decision's checks need a valid one (each persona decides its own approval).
    ("workflow", "POST", "/approvals/{approval_id}/decision"): {"json": {"decision": "reject"}},
    # An unknown role: refused as invalid, so the user is not replaced.
    ("workflow", "PUT", "/users/{user_id}"): {"json": {"roles": ["no-such-role"]}},
}
#: Collection routes the other tenant's user lists: none of acme's rows may show.
LEAK_QUERIES: dict[tuple[str, str], dict] = {
    ("workflow", "/approvals"): {"all": "true"},
}


def _cells():
    for (service, method, path), row in EXPECTED.items():
        assert len(row) == len(PERSONAS), f"{service} {method} {path}: {len(row)} columns"
        for persona, expected in zip(PERSONAS, row, strict=True):
            yield pytest.param(
                service, method, path, persona, expected, id=f"{service} {method} {path} {persona}"
            )


# -- the world the matrix runs in ---------------------------------------------------


class Outbox:
    """The workflow web's broker: keeps what is sent, so the test runs executions."""

    def __init__(self):
        self.messages = []

    def enqueue(self, message, *, delay=None):
        self.messages.append(message)
        return message

    def take(self, actor_name: str) -> list:
        taken = [m for m in self.messages if m.actor_name == actor_name]
        self.messages = [m for m in self.messages if m.actor_name != actor_name]
        return taken


def user_headers(sub: str, roles, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, sub, list(roles), tenant)}"}


def persona_headers(persona: str) -> dict[str, str]:
    if persona == "none":
        return {}
    if persona == "service":
        return {"Authorization": f"Bearer {issue_service_token(SERVICE_TOKEN_SECRET, TENANT)}"}
    if persona == "other":
        return user_headers("globex-gina", ["admin", "editor", "approver"], OTHER_TENANT)
    return user_headers(f"acme-{persona}", [persona], TENANT)


AUTHOR = user_headers("acme-author", ["editor"], TENANT)
GINA = persona_headers("other")


@dataclasses.dataclass
class World:
    clients: dict[str, falcon.testing.TestClient]
    #: path parameter -> the acme row it names
    ids: dict[str, str]
    #: per route: parameters naming rows of that route's own
    route_ids: dict[tuple[str, str, str], dict[str, str]]
    #: per route and persona: parameters naming rows of that persona's own
    persona_ids: dict[tuple[str, str, str, str], dict[str, str]]
    #: every id of an acme row (leaks are looked for by these)
    acme_ids: set[str]
    #: ids of globex's own rows, which its user does see
    globex_ids: set[str]

    def path_for(self, service: str, method: str, path: str, persona: str) -> str:
        params = {
            **self.ids,
            **self.route_ids.get((service, method, path), {}),
            **self.persona_ids.get((service, method, path, persona), {}),
        }
        return path.format(**params)


@pytest.fixture(scope="module")
def world(make_database_url, redis_url) -> Iterator[World]:
    namespace = f"t-{uuid.uuid4().hex[:12]}"
    redis_client = redis.Redis.from_url(redis_url)
    with contextlib.ExitStack() as stack:
        stack.callback(_drop_namespace, redis_client, namespace)
        api = _api_client(stack, make_database_url("authz_api"), redis_url, namespace)
        workflow, engine, outbox = _workflow_client(
            stack, make_database_url("authz_wf"), redis_url, namespace, redis_client, api.app
        )
        yield _seed(api, workflow, engine, outbox, redis_client, namespace)


def _drop_namespace(client: redis.Redis, namespace: str) -> None:
    for pattern in (f"{namespace}:*", f"{namespace}-*", f"{namespace}.*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    client.close()


def _api_client(stack, url, redis_url, namespace) -> falcon.testing.TestClient:
    db = open_database(url)
    with db.connection_context():
        migrate(db, API_MIGRATIONS)
    db.close()
    settings = ApiSettings(
        redis_url=redis_url,
        namespace=namespace,
        jwt_secret=JWT_SECRET,
        service_token_secret=SERVICE_TOKEN_SECRET,
        database_url=url,
        # Evidence files: a directory of the module's own.
        evidence_dir=Path(stack.enter_context(tempfile.TemporaryDirectory())),
    )
    deps = build_api_deps(settings)
    app = create_api_app(settings, deps)

    def close():
        if deps.outbox is not None:
            deps.outbox.close()
        deps.broker.close()
        if hasattr(deps.db, "close_all"):
            deps.db.close_all()

    stack.callback(close)
    return falcon.testing.TestClient(app)


def _workflow_client(stack, url, redis_url, namespace, redis_client, api_app):
    db = init_database(url)
    migrate(db, all_migrations())
    stack.callback(db.close)
    settings = WorkflowSettings(
        redis_url=redis_url,
        namespace=namespace,
        database_url="unused: bound by init_database",
        jwt_secret=JWT_SECRET,
        service_token_secret=SERVICE_TOKEN_SECRET,
        # Stored files: a directory of the module's own.
        files_dir=Path(stack.enter_context(tempfile.TemporaryDirectory())),
    )
    outbox = Outbox()
    # The workflow service reaches the api in this process (manual runs load the policy).
    api = ApiClient("http://api", SERVICE_TOKEN_SECRET, transport=httpx.WSGITransport(app=api_app))
    engine = build_engine(settings, database, outbox, redis_client, api=api)
    stack.callback(engine.api.close)
    app = create_workflow_app(
        settings, WorkflowDeps(db=db, broker=outbox, redis=redis_client, engine=engine)
    )
    return falcon.testing.TestClient(app), engine, outbox


def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json


def _seed(api, workflow, engine, outbox, redis_client, namespace) -> World:
    """acme's rows (and a few of globex's), made the way the system makes them."""
    with database.connection_context():
        for role in ROLE_PERSONAS:
            save_user(TENANT, f"acme-{role}", email=f"{role}@acme.example", roles=[role])
        save_user(TENANT, "acme-owner", email="owner@acme.example", roles=["editor"])
        save_user(TENANT, "acme-spare", email="spare@acme.example", roles=["viewer"])
        save_user(OTHER_TENANT, "globex-gina", roles=["admin", "editor", "approver"])

    # acme's webhook signing secret, rotated by its admin (another tenant sees neither
    # the secret nor who rotated it).
    rotated = _ok(
        workflow.simulate_post("/webhook-secret/rotate", headers=persona_headers("admin")), 201
    )

    # The api: a policy per tenant; each write's job record lands in Redis.
    body = {"title": "Access control", "policy_type": "security", "owner": "acme-owner"}
    policy = _ok(api.simulate_post("/policies", json=body, headers=AUTHOR), 201)
    theirs = _ok(api.simulate_post("/policies", json={**body, "owner": "gina"}, headers=GINA), 201)
    job_id, their_job_id = policy["jobs"][0]["id"], theirs["jobs"][0]["id"]
    # acme's settings, changed by its admin (another tenant's admin sees only its own).
    settings = {"approval_requires_workflow": False}
    _ok(api.simulate_patch("/tenant-settings", json=settings, headers=persona_headers("admin")))
    poll(
        lambda: (
            redis_client.exists(f"{namespace}:job:{job_id}")
            and redis_client.exists(f"{namespace}:job:{their_job_id}")
        ),
        message="the job records of the seeded policies",
    )

    # The workflow service: one workflow to read and run (its run leaves a task, an
    # in-app notification and an e-mail delivery for acme-approver, and an approval
    # only acme-approver decides), one with a slot for every persona (one run each, so
    # each decides its own), one whose status the status actions change.
    tell = {
        "kind": "notify",
        "recipients": ["user:acme-approver"],
        "channels": ["in_app", "email"],
        "subject": "Review {{ entity.title }}",
    }
    task = {"kind": "create_task", "assignee": "acme-approver", "title": "Review it"}
    review = _workflow(workflow, "review", [tell, task, _approval(["user:acme-approver"])])
    panel_approvers = [f"user:acme-{role}" for role in ROLE_PERSONAS]
    panel = _workflow(workflow, "panel", [_approval(panel_approvers)])
    toggle = _workflow(workflow, "toggle", [tell])
    tell_gina = {**tell, "recipients": ["user:globex-gina"], "channels": ["in_app"]}
    theirs_wf = _workflow(workflow, "theirs", [tell_gina], headers=GINA)

    def run(workflow_id: str) -> str:
        entity = {"title": "Access control", "owner": "acme-owner", "status": "in_review"}
        answer = workflow.simulate_post(
            f"/workflows/{workflow_id}/run",
            json={"entity_id": policy["id"], "data": {**entity, "version": 2}},
            headers=AUTHOR,
        )
        execution_id = _ok(answer, 202)["execution_id"]
        for message in outbox.take("run_execution"):
            with contextlib.suppress(ExecutionFailed):
                engine.run(message.args[0])
        return execution_id

    execution_id = run(review["id"])
    to_cancel = run(review["id"])
    panel_runs = {persona: run(panel["id"]) for persona in PERSONAS}
    with database.connection_context():
        approval = ApprovalRequest.get(ApprovalRequest.execution == execution_id)
        task_row = Task.get(Task.execution == execution_id)
        note = Notification.get(Notification.execution == execution_id)
        delivery = Delivery.get(Delivery.execution == execution_id)
        decisions = {
            persona: str(ApprovalRequest.get(ApprovalRequest.execution == run_id).id)
            for persona, run_id in panel_runs.items()
        }
        acme_rows = [
            *(
                str(r.id)
                for r in ApprovalRequest.select().where(ApprovalRequest.tenant_id == TENANT)
            ),
            *(str(r.id) for r in Task.select().where(Task.tenant_id == TENANT)),
            *(str(r.id) for r in Notification.select().where(Notification.tenant_id == TENANT)),
            *(str(r.id) for r in Delivery.select().where(Delivery.tenant_id == TENANT)),
        ]

    # Stored files: a report of acme's, made as a report job makes it.
    with database.connection_context():
        store = FileStore.from_settings(engine.settings)
        with store.create(
            tenant=TENANT,
            kind="report",
            name="policy_status.csv",
            content_type="text/csv",
            created_by="acme-editor",
            job_id=str(uuid.uuid4()),
        ) as out:
            out.write(b"status,count\ndraft,1\n")
        file_id = out.file.id
        acme_rows.append(file_id)

    # Imports: a dry run of acme's (its message stays in the outbox).
    csv_file = b"title,policy_type\nAccess control,security\n"
    started = workflow.simulate_post(
        "/imports",
        body=csv_file,
        params={"dry_run": "true"},
        headers={**AUTHOR, "Content-Type": "text/csv"},
    )
    import_id = _ok(started, 202)["import"]["id"]
    acme_rows.append(import_id)

    # Assessments and evidence: one of each of acme's, the evidence with a file.
    assessment = _ok(
        api.simulate_post("/assessments", json={"title": "Q1 review"}, headers=AUTHOR), 201
    )
    evidence = {"title": "Export", "kind": "document", "assessments": [assessment["id"]]}
    evidence = _ok(api.simulate_post("/evidence", json=evidence, headers=AUTHOR), 201)
    upload = {**AUTHOR, "Content-Type": "text/plain", "If-Match": '"1"'}
    _ok(api.simulate_put(f"/evidence/{evidence['id']}/file", body=b"ok", headers=upload))
    entity_ids = {"assessment_id": assessment["id"], "evidence_id": evidence["id"]}

    decision = ("workflow", "POST", "/approvals/{approval_id}/decision")
    # Audit trail: chain what seeding recorded, so /audit holds acme's entries (which
    # globex's user must not see).
    with database.connection_context():
        for tenant in audit_chain.pending_tenants():
            audit_chain.append(database, tenant)

    return World(
        clients={"api": api, "workflow": workflow},
        ids={
            "policy_id": policy["id"],
            "job_id": job_id,
            "workflow_id": review["id"],
            "execution_id": execution_id,
            "approval_id": str(approval.id),
            "task_id": str(task_row.id),
            "notification_id": str(note.id),
            "user_id": "acme-approver",
            "template": "policy-approval",
            "name": "console.js",
            "file_id": file_id,
            "import_id": import_id,
            **entity_ids,
        },
        route_ids={
            **{
                ("workflow", "POST", f"/workflows/{{workflow_id}}/{action}"): {
                    "workflow_id": toggle["id"]
                }
                for action in ("activate", "deactivate", "archive")
            },
            ("workflow", "POST", "/executions/{execution_id}/cancel"): {"execution_id": to_cancel},
            **{
                ("workflow", "POST", f"/queues/{{name}}/{action}"): {"name": "governance.audit"}
                for action in ("pause", "resume")
            },
            ("workflow", "GET", "/console/vendor/{name}"): {"name": "uPlot.iife.min.js"},
            ("workflow", "DELETE", "/users/{user_id}"): {"user_id": "acme-spare"},
            ("workflow", "PUT", "/users/{user_id}"): {"user_id": "acme-spare"},
        },
        persona_ids={
            (*decision, persona): {"approval_id": approval_id}
            for persona, approval_id in decisions.items()
        },
        acme_ids={
            policy["id"],
            job_id,
            review["id"],
            panel["id"],
            toggle["id"],
            execution_id,
            to_cancel,
            str(delivery.id),
            *acme_rows,
            *entity_ids.values(),
            *(f"acme-{role}" for role in ROLE_PERSONAS),
            "acme-owner",
            "acme-author",
            "acme-spare",
            rotated["secret"],
        },
        globex_ids={theirs["id"], their_job_id, theirs_wf["id"]},
    )


def _approval(approvers: list[str]) -> dict:
    return {
        "kind": "require_approval",
        "approvers": approvers,
        "mode": "any",
        "on_approve": [{"kind": "notify", "recipients": ["owner"], "subject": "approved"}],
        "on_reject": [{"kind": "notify", "recipients": ["owner"], "subject": "rejected"}],
    }


def _workflow(client, name: str, steps: list[dict], headers=AUTHOR) -> dict:
    body = {
        "name": name,
        "entity_type": "policy",
        "trigger": "manual",
        "status": "active",
        "steps": steps,
    }
    return _ok(client.simulate_post("/workflows", json=body, headers=headers), 201)


def _call(world: World, service: str, method: str, path: str, persona: str, **overrides):
    spec = REQUESTS.get((service, method, path), {})
    kwargs = {
        "headers": {**persona_headers(persona), **spec.get("headers", {})},
        "params": overrides.get("params", spec.get("params")),
    }
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = spec.get("json", INVALID_BODY)
    url = world.path_for(service, method, path, persona)
    return world.clients[service].simulate_request(method, url, **kwargs)


# -- the tests ------------------------------------------------------------------------


def documented_routes(world: World) -> set[tuple[str, str, str]]:
    routes = set()
    for service, client in world.clients.items():
        document = _ok(client.simulate_get("/openapi.json"))
        for path, operations in document["paths"].items():
            for method in operations:
                if method.upper() in falcon.COMBINED_METHODS:
                    routes.add((service, method.upper(), path))
    return routes


def test_every_documented_route_has_a_row(world):
    documented = documented_routes(world)
    missing = sorted(documented - EXPECTED.keys())
    gone = sorted(EXPECTED.keys() - documented)
    assert not missing, "routes without a row in EXPECTED (decide who may call them): " + (
        ", ".join(" ".join(route) for route in missing)
    )
    assert not gone, "rows in EXPECTED for routes the OpenAPI documents no longer have: " + (
        ", ".join(" ".join(route) for route in gone)
    )


@pytest.mark.parametrize(("service", "method", "path", "persona", "expected"), list(_cells()))
def test_authorization(world, service, method, path, persona, expected):
    response = _call(world, service, method, path, persona)
    status = response.status_code
    where = f"{persona} on {service} {method} {world.path_for(service, method, path, persona)}"
    if expected == OK:
        assert status not in REFUSED, f"{where}: refused ({status}): {response.text}"
        assert status < 500, f"{where}: server error ({status}): {response.text}"
    else:
        assert status == expected, f"{where}: {status}, expected {expected}: {response.text}"


def _collections():
    for (service, method, path), row in EXPECTED.items():
        other = row[PERSONAS.index("other")]
        public = row[PERSONAS.index("none")] == OK
        if method == "GET" and "{" not in path and other == OK and not public:
            yield pytest.param(service, path, id=f"{service} GET {path}")


@pytest.mark.parametrize(("service", "path"), list(_collections()))
def test_other_tenant_lists_none_of_acme_rows(world, service, path):
    params = LEAK_QUERIES.get((service, path))
    response = _call(world, service, "GET", path, "other", params=params)
    assert response.status_code == 200, response.text
    text = response.text
    leaked = sorted(i for i in world.acme_ids if i in text)
    assert not leaked, f"globex's user sees acme's {leaked} on {service} GET {path}"
    assert json.dumps(TENANT) not in text, f"{service} GET {path} names tenant acme: {text}"


def test_other_tenant_sees_its_own_jobs(world):
    # The leak test above passes on an empty answer too; globex's own job is there.
    ops = _call(world, "workflow", "GET", "/jobs", "other")
    assert _ok(ops)["items"], ops.text
    assert {item["id"] for item in ops.json["items"]} <= world.globex_ids
