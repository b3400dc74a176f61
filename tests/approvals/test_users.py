"""The user directory: admin API, file import, and recipient resolution."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import quote

import pytest

from tests.approvals.conftest import TENANT, auth
from tests.support import ROOT
from workflow_service.users.directory import (
    UserDirectory,
    UserExists,
    get_user,
    parse_recipient,
    resolve,
    roles_of,
    save_user,
)
from workflow_service.users.importing import ImportFileError, load_records
from workflow_service.users.models import User

ADMIN = auth("root")


def test_admin_manages_users(client):
    created = client.simulate_post(
        "/users",
        headers=ADMIN,
        json={
            "id": "erin",
            "name": "Erin",
            "email": "erin@example.org",
            "roles": ["approver", "editor"],
        },
    )
    assert created.status_code == 201, created.json
    assert created.json["roles"] == ["approver", "editor"] and created.json["tenant"] == TENANT
    assert client.simulate_post("/users", headers=ADMIN, json={"id": "erin"}).status_code == 409
    replaced = client.simulate_put(
        "/users/erin", headers=ADMIN, json={"name": "Erin B", "roles": ["viewer"]}
    )
    assert replaced.status_code == 200 and replaced.json["roles"] == ["viewer"]
    assert replaced.json["email"] is None
    approvers = client.simulate_get("/users", params={"role": "approver"}, headers=ADMIN).json
    assert [u["id"] for u in approvers["items"]] == ["alice", "bob", "carol", "olivia"]
    page = client.simulate_get("/users", params={"limit": 2}, headers=ADMIN).json
    assert len(page["items"]) == 2 and page["next_after"] == page["items"][-1]["id"]
    assert client.simulate_delete("/users/erin", headers=ADMIN).status_code == 204
    assert client.simulate_get("/users/erin", headers=ADMIN).status_code == 404
    assert client.simulate_delete("/users/erin", headers=ADMIN).status_code == 404
    spaced = client.simulate_put("/users/has%20space", headers=ADMIN, json={"name": "x"})
    assert spaced.status_code == 400 and "user_id" in spaced.json["title"]


def test_concurrent_creates_of_one_user_make_one_and_change_nothing_else(workflow_db):
    # Given a user created and another create of the same id arriving after it
    save_user(TENANT, "frank", name="First", roles=["viewer"])
    # Then the second is refused, and the first stays as it was
    with pytest.raises(UserExists):
        save_user(TENANT, "frank", name="Second", roles=["admin"], replace=False)
    assert get_user(TENANT, "frank").name == "First"
    assert roles_of(get_user(TENANT, "frank")) == ["viewer"]


def test_only_admins_and_only_their_tenant(client):
    assert client.simulate_get("/users", headers=auth("alice")).status_code == 403
    assert (
        client.simulate_post("/users", headers=auth("olivia"), json={"id": "x"}).status_code == 403
    )
    assert client.simulate_get("/users").status_code == 401
    other = auth("root", ["admin"], tenant="globex")
    assert client.simulate_get("/users/alice", headers=other).status_code == 404
    assert client.simulate_get("/users", headers=other).json["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "x", "roles": ["wizard"]}, "roles"),
        ({"id": "x", "email": "not-an-address"}, "email"),
        # Exactly one plain address: nothing that could add a recipient.
        ({"id": "x", "email": "erin@example.org, eve@evil.example"}, "email"),
        ({"id": "x", "email": "erin@example.org,eve@evil.example"}, "email"),
        ({"id": "x", "email": "erin@example.org;eve@evil.example"}, "email"),
        ({"id": "x", "email": "Eve <eve@evil.example>"}, "email"),
        ({"id": "x", "email": "erin@example.org (Eve) eve@evil.example"}, "email"),
        ({"id": "x", "email": '"erin,eve"@example.org'}, "email"),
        ({"id": "x", "email": "erin@example.org\nBcc: eve@evil.example"}, "email"),
        ({"id": "x", "email": "erin@@example.org"}, "email"),
        ({"id": "x", "email": "erin@[127.0.0.1]"}, "email"),
        ({"id": "x", "email": "erin@localhost"}, "email"),
        ({"id": "x", "email": "a" * 300 + "@example.org"}, "email"),
        ({"id": "", "name": "nobody"}, "id"),
        ({"id": "x", "colour": "blue"}, "colour"),
        ({"id": "x", "roles": "approver"}, "roles"),
    ],
)
def test_bad_users_are_refused_naming_the_field(client, body, field):
    answer = client.simulate_post("/users", headers=ADMIN, json=body)
    assert answer.status_code == 422
    assert field in answer.json["description"]


INVISIBLE_IDS = [
    "bob\u200b",  # zero-width space
    "b\u200dob",  # zero-width joiner
    "bob\u202e",  # right-to-left override
    "\u2066bob",  # left-to-right isolate
    "\ufeffbob",  # byte order mark
    "bob\x07",  # a control character
    "bob\u00ad",  # soft hyphen
    "b\u043eb",  # Cyrillic o: shows as "bob"
    "bob smith",
]


@pytest.mark.parametrize("user_id", INVISIBLE_IDS)
def test_user_ids_refuse_control_and_invisible_characters(client, user_id):
    # A user id is the token 'sub' its person signs in with; one that shows as another
    # person's id (or cannot be a sub at all) is refused wherever a user is written.
    answer = client.simulate_post("/users", headers=ADMIN, json={"id": user_id})
    assert answer.status_code == 422, answer.text
    assert "id" in answer.json["description"]
    assert "sub" in answer.json["description"]
    replaced = client.simulate_put(f"/users/{quote(user_id, safe='')}", headers=ADMIN, json={})
    assert replaced.status_code == 400, replaced.text
    assert replaced.json["title"] == "Invalid parameter 'user_id'"
    ids = [u["id"] for u in client.simulate_get("/users", headers=ADMIN).json["items"]]
    assert user_id not in ids


def test_an_import_row_with_an_invisible_character_in_its_id_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('- {id: alice, roles: [viewer]}\n- {id: "bob\\u202e", roles: [viewer]}\n')
    with pytest.raises(ImportFileError, match=r"user #2.*id.*U\+202E"):
        load_records(bad, TENANT)
    assert [r.id for r in load_records(_one(tmp_path, "b.o-b_1@x+y"), TENANT)] == ["b.o-b_1@x+y"]


def _one(tmp_path, user_id):
    good = tmp_path / "good.yaml"
    good.write_text(f"- {{id: '{user_id}', roles: [viewer]}}\n")
    return good


def run_import(database_url, path, *args):
    env = {**os.environ, "WORKFLOW_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "workflow_service", "users", "import", str(path), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def url_of(db) -> str:
    if "Postgres" in type(db).__name__:
        params = db.connect_params
        return (
            f"postgresql://{params.get('user', 'postgres')}@{params.get('host')}:"
            f"{params.get('port', 5432)}/{db.database}"
        )
    return f"sqlite:///{db.database}"


def test_import_yaml_and_csv(workflow_db, tmp_path):
    yaml_file = tmp_path / "people.yaml"
    yaml_file.write_text(
        "users:\n"
        "  - {id: frank, name: Frank, email: frank@example.org, roles: [approver]}\n"
        "  - {id: alice, name: Alice A, email: alice@example.org, roles: [approver, editor]}\n"
        "  - {id: ivy, name: Ivy, roles: [viewer], tenant: acme}\n"
    )
    done = run_import(url_of(workflow_db), yaml_file, "--tenant", TENANT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported 3 users (2 created, 1 updated)" in done.stdout
    # Without --tenant each row names its own.
    other = tmp_path / "other.yaml"
    other.write_text("- {id: gina, name: Gina, roles: [viewer], tenant: globex}\n")
    done = run_import(url_of(workflow_db), other)
    assert done.returncode == 0, done.stdout + done.stderr
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("id,name,email,roles\nhank,Hank,hank@example.org,editor;approver\n")
    done = run_import(url_of(workflow_db), csv_file, "--tenant", TENANT)
    assert done.returncode == 0, done.stdout + done.stderr
    with workflow_db.connection_context():
        frank = User.get((User.tenant_id == TENANT) & (User.user_id == "frank"))
        assert roles_of(frank) == ["approver"]
        alice = User.get((User.tenant_id == TENANT) & (User.user_id == "alice"))
        assert alice.name == "Alice A" and roles_of(alice) == ["approver", "editor"]
        assert User.get(User.user_id == "gina").tenant_id == "globex"
        hank = User.get(User.user_id == "hank")
        assert (hank.email, roles_of(hank)) == ("hank@example.org", ["approver", "editor"])


@pytest.mark.parametrize(
    "address", ["erin@example.org", "erin.smith+grc@mail.example.co.uk", "e_1@example-corp.io"]
)
def test_plain_addresses_are_accepted(client, address):
    answer = client.simulate_post("/users", headers=ADMIN, json={"id": "erin", "email": address})
    assert answer.status_code == 201, answer.text
    assert answer.json["email"] == address


def test_import_with_tenant_refuses_rows_naming_another_tenant(workflow_db, tmp_path):
    # Given an import for acme whose rows 2 and 4 name globex
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        "id,name,roles,tenant\n"
        "kim,Kim,viewer,acme\n"
        "lee,Lee,admin,globex\n"
        "max,Max,viewer,\n"
        "ned,Ned,admin,globex\n"
    )
    done = run_import(url_of(workflow_db), mixed, "--tenant", TENANT)
    # Then the import stops, names both rows, and writes nobody
    assert done.returncode == 2, done.stdout + done.stderr
    assert "#2 (lee" in done.stdout and "#4 (ned" in done.stdout
    assert "#1" not in done.stdout and "#3" not in done.stdout
    assert "another tenant" in done.stdout
    with workflow_db.connection_context():
        assert not User.select().where(User.user_id.in_(["kim", "lee", "max", "ned"])).exists()


def test_import_refuses_an_address_that_adds_a_recipient(workflow_db, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('id,email\nzoe,"zoe@example.org, eve@evil.example"\n')
    done = run_import(url_of(workflow_db), bad, "--tenant", TENANT)
    assert done.returncode == 2
    assert "user #1" in done.stdout and "email" in done.stdout


def test_import_names_the_bad_row(workflow_db, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {id: ok, roles: [viewer]}\n- {id: bad, roles: [wizard]}\n")
    done = run_import(url_of(workflow_db), bad, "--tenant", TENANT)
    assert done.returncode == 2
    assert "user #2" in done.stdout and "roles" in done.stdout
    no_tenant = tmp_path / "no-tenant.csv"
    no_tenant.write_text("id,name\nzed,Zed\n")
    done = run_import(url_of(workflow_db), no_tenant)
    assert done.returncode == 2 and "--tenant" in done.stdout
    with workflow_db.connection_context():
        assert not User.select().where(User.user_id.in_(["ok", "zed"])).exists()


def test_recipients_resolve_by_id_role_owner_and_initiator(workflow_db):
    people = resolve(
        TENANT,
        ["owner", "role:approver", "user:alice", "user:stranger", "initiator"],
        owner="olivia",
        initiator="dave",
    )
    ids = [p.user_id for p in people]
    assert ids == ["olivia", "alice", "bob", "carol", "stranger", "dave"]
    stranger = next(p for p in people if p.user_id == "stranger")
    assert not stranger.known and stranger.email is None
    assert next(p for p in people if p.user_id == "bob").email == "bob@example.org"
    assert resolve(TENANT, ["owner"], owner=None) == []
    with pytest.raises(ValueError, match="role"):
        parse_recipient("role:wizard")
    with pytest.raises(ValueError, match="user:<id>"):
        parse_recipient("team:x")
    directory = UserDirectory()
    assert directory.users_with_role(TENANT, "approver") == ["alice", "bob", "carol", "olivia"]
    assert directory.users_with_role("empty-tenant", "approver") is None
