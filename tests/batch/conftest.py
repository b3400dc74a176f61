"""Fixtures of the export and import tests: a migrated workflow database, a file store
in a tmp directory, the admin app with a broker that keeps what is sent, and the real
api in this process (its client uses service tokens, as workers do)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import falcon.testing
import pytest

from shared.auth import issue_token
from shared.db import migrate
from tests.conftest import JWT_SECRET
from tests.inprocess_api import api, api_app  # noqa: F401 - fixtures
from workflow_service.db import init_database
from workflow_service.migrations import all_migrations
from workflow_service.settings import BatchSettings, WorkflowSettings
from workflow_service.storage import FileStore

TENANT, OTHER_TENANT = "acme", "globex"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Small limits, so the tests of them stay small.
MAX_BYTES = 200_000
MAX_ROWS = 1_500


def auth(sub: str, roles, tenant: str = TENANT) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, sub, list(roles), tenant)}"}


def csv_bytes(rows: list[list], header=("title", "policy_type")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def xlsx_bytes(rows: list[list], header=("title", "policy_type")) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(list(header))
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


class Outbox:
    """A broker that keeps what is sent."""

    def __init__(self):
        self.messages = []

    def enqueue(self, message, *, delay=None):
        self.messages.append(message)
        return message


@pytest.fixture
def workflow_db(make_database_url) -> Iterator:
    db = init_database(make_database_url("batch"))
    migrate(db, all_migrations())
    yield db
    db.close()


@pytest.fixture
def settings(workflow_db, redis_url, namespace, tmp_path) -> WorkflowSettings:
    return WorkflowSettings(
        redis_url=redis_url,
        namespace=namespace,
        database_url="unused: bound by the workflow_db fixture",
        jwt_secret=JWT_SECRET,
        files_dir=tmp_path / "files",
        batch=BatchSettings(import_max_bytes=MAX_BYTES, import_max_rows=MAX_ROWS),
    )


@pytest.fixture
def store(settings, workflow_db) -> FileStore:
    return FileStore.from_settings(settings)


@pytest.fixture
def connected(workflow_db) -> Iterator:
    with workflow_db.connection_context():
        yield workflow_db


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def client(settings, workflow_db, redis_client, outbox):
    from workflow_service.app import Deps, create_app

    app = create_app(settings, Deps(db=workflow_db, broker=outbox, redis=redis_client))
    return falcon.testing.TestClient(app)


def api_policies(app, tenant: str = TENANT) -> list[dict]:
    """Every policy of ``tenant``, read through the api by a viewer."""
    items, cursor = [], None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        answer = falcon.testing.simulate_get(
            app, "/policies", params=params, headers=auth("vera", ["viewer"], tenant)
        )
        assert answer.status_code == 200, answer.text
        items += answer.json["items"]
        cursor = answer.json["next_cursor"]
        if not cursor:
            return items
