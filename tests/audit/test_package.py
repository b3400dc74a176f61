"""Audit packages: the zip's files, the manifest's hashes, retries, the api failing."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime

import httpx
import pytest

from shared.events import Event
from tests.audit.conftest import TENANT, auth, chain_all
from workflow_service.audit import chain
from workflow_service.audit.models import AuditEntry
from workflow_service.audit.package import PackageError, run_package, store_package
from workflow_service.audit.record import record
from workflow_service.storage import FileStore, StoredFile

NOW = datetime.now(UTC).replace(tzinfo=None).isoformat() + "Z"


class PolicyApi:
    """The api's /policies (two pages) and /policies/{id}/versions; nothing else."""

    def __init__(self):
        self.requests: list[str] = []
        self.down = False
        self.policies = [
            {"id": "p-new", "title": "Travel", "updated_at": NOW, "created_at": NOW},
            {"id": "p-old", "title": "Old", "updated_at": "2019-01-01T00:00:00Z"},
        ]
        self.versions = {
            "p-new": [
                {"version": 1, "change": "created", "changed_at": NOW},
                {"version": 2, "change": "updated", "changed_at": NOW},
            ],
            "p-old": [{"version": 1, "change": "created", "changed_at": "2019-01-01T00:00:00Z"}],
        }

    def request(self, method, path, tenant_id, **kwargs):
        assert method == "GET" and tenant_id == TENANT
        self.requests.append(path)
        if self.down:
            raise httpx.ConnectError("the api is down")
        route, _, query = path.partition("?")
        if route == "/policies":
            if "cursor=page2" in query:
                return httpx.Response(200, json={"items": self.policies[1:], "next_cursor": None})
            return httpx.Response(200, json={"items": self.policies[:1], "next_cursor": "page2"})
        if route.startswith("/policies/") and route.endswith("/versions"):
            pid = route.split("/")[2]
            return httpx.Response(200, json={"items": self.versions[pid], "next_cursor": None})
        return httpx.Response(404, json={"title": "Not found", "description": "no route"})


def members(store: FileStore, stored: StoredFile) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(store.full_path(stored).read_bytes())) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.fixture
def activity(client, engine):
    """A workflow run for an event, and an entry from long before the period."""
    workflow = {
        "name": "Review",
        "entity_type": "policy",
        "trigger": "on_create",
        "status": "active",
        "steps": [{"kind": "create_task", "role": "approver", "title": "Review"}],
    }
    client.simulate_post("/workflows", json=workflow, headers=auth("olivia"))
    event = Event(
        event_type="policy.created",
        entity_type="policy",
        entity_id="p-new",
        tenant_id=TENANT,
        actor="olivia",
        data={"title": "Travel"},
    )
    [execution] = engine.dispatch(event)
    engine.run(execution.id)
    record(
        TENANT,
        "event:ancient",
        "policy.created",
        actor="olivia",
        entity_type="policy",
        entity_id="p-old",
        at=datetime(2019, 1, 1),
    )
    chain_all()
    return execution


def test_a_package_holds_the_periods_records_and_a_manifest_of_their_hashes(settings, activity):
    api = PolicyApi()
    store = FileStore.from_settings(settings)
    sink = store_package(TENANT, "audrey", "job-1", settings)
    start, until = "2026-01-01T00:00:00", "2099-01-01T00:00:00"
    descriptor = run_package(TENANT, start, until, "audrey", "job-1", api, sink)

    stored = StoredFile.get_by_id(descriptor["file_id"])
    assert stored.kind == "audit_package" and stored.tenant_id == TENANT
    assert stored.job_id == "job-1" and descriptor["href"] == f"/files/{stored.id}"
    files = members(store, stored)
    assert hashlib.sha256(store.full_path(stored).read_bytes()).hexdigest() == stored.sha256
    assert set(files) == {
        "policies.jsonl",
        "approvals.jsonl",
        "executions.jsonl",
        "audit_log.jsonl",
        "manifest.json",
    }
    manifest = json.loads(files["manifest.json"])
    # Every file is listed with its SHA-256 and size
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == set(files) - {"manifest.json"}
    for name, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(files[name]).hexdigest(), name
        assert entry["size"] == len(files[name])
    assert manifest["period"] == {"from": start + "Z", "until": until + "Z"}
    assert manifest["not_in_api"] == ["assessments", "evidence"]
    assert manifest["chain"]["verify"]["intact"] is True
    assert manifest["chain"]["head"]["seq"] == manifest["chain"]["verify"]["entries"]
    # The period's policy with its versions; the old one is not in it
    [policy] = lines(files["policies.jsonl"])
    assert policy["policy"]["id"] == "p-new" and len(policy["versions"]) == 2
    assert "/policies?limit=200&cursor=page2" in api.requests
    # Executions with their step logs
    [execution] = lines(files["executions.jsonl"])
    assert execution["id"] == activity.id and execution["steps"][0]["kind"] == "create_task"
    # The audit log slice: the period's entries, not the 2019 one, in chain order
    log = lines(files["audit_log.jsonl"])
    assert "event:ancient" not in {e["source_id"] for e in log}
    assert [e["seq"] for e in log] == sorted(e["seq"] for e in log)
    assert listed["audit_log.jsonl"]["records"] == len(log) > 0
    # Building it is itself in the audit log
    chain_all()
    built = AuditEntry.get(AuditEntry.action == "audit_package.built")
    assert built.actor == "audrey" and built.entity_id == stored.id


def test_a_retried_package_job_replaces_its_file(settings, activity):
    store = FileStore.from_settings(settings)
    args = (TENANT, "2026-01-01T00:00:00", "2099-01-01T00:00:00", "audrey", "job-2")
    first = run_package(*args, PolicyApi(), store_package(TENANT, "audrey", "job-2", settings))
    second = run_package(*args, PolicyApi(), store_package(TENANT, "audrey", "job-2", settings))
    assert first["file_id"] == second["file_id"]
    assert StoredFile.select().where(StoredFile.job_id == "job-2").count() == 1
    files = members(store, StoredFile.get_by_id(second["file_id"]))
    assert "manifest.json" in files


def test_a_package_whose_api_is_down_fails_for_a_retry_and_stores_nothing(settings, activity):
    api = PolicyApi()
    api.down = True
    sink = store_package(TENANT, "audrey", "job-3", settings)
    with pytest.raises(PackageError):
        run_package(
            TENANT, "2026-01-01T00:00:00", "2099-01-01T00:00:00", "audrey", "job-3", api, sink
        )
    assert StoredFile.select().count() == 0


def test_a_package_records_a_broken_chain_in_its_manifest(settings, activity):
    AuditEntry.update(actor="mallory").where(
        (AuditEntry.tenant_id == TENANT) & (AuditEntry.seq == 2)
    ).execute()
    store = FileStore.from_settings(settings)
    sink = store_package(TENANT, "audrey", "job-4", settings)
    descriptor = run_package(
        TENANT, "2026-01-01T00:00:00", "2099-01-01T00:00:00", "audrey", "job-4", PolicyApi(), sink
    )
    manifest = json.loads(
        members(store, StoredFile.get_by_id(descriptor["file_id"]))["manifest.json"]
    )
    assert manifest["chain"]["verify"]["intact"] is False
    assert manifest["chain"]["verify"]["broken_at"] == 2
    assert chain.verify(TENANT)["broken_at"] == 2


def check_package_alone(files: dict[str, bytes]) -> list[dict]:
    """What an auditor can do with the zip and nothing else (see the README): each
    member's SHA-256, each entry's hash from its own fields, each link to the one before."""
    manifest = json.loads(files["manifest.json"])
    for listed in manifest["files"]:
        assert hashlib.sha256(files[listed["name"]]).hexdigest() == listed["sha256"]
    log = lines(files["audit_log.jsonl"])
    for before, entry in zip(log, log[1:], strict=False):
        assert entry["seq"] == before["seq"] + 1, "the slice has a gap"
        assert entry["prev_hash"] == before["hash"]
    for entry in log:
        body = {k: entry[k] for k in ("seq", "source_id", "actor", "action", "entity_type",
                                      "entity_id", "digest", "prev_hash")}  # fmt: skip
        body["tenant_id"] = manifest["tenant"]
        moment = datetime.fromisoformat(entry["occurred_at"].replace("Z", "+00:00"))
        body["occurred_at"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert hashlib.sha256(text.encode()).hexdigest() == entry["hash"], entry["seq"]
    described = manifest["audit_log"]
    assert (described["first_seq"], described["last_seq"]) == (log[0]["seq"], log[-1]["seq"])
    assert described["last_hash"] == log[-1]["hash"]
    return log


def test_a_package_checks_out_on_its_own_links_included(settings, workflow_db):
    def note(source: str, at: datetime) -> None:
        record(TENANT, source, "policy.updated", actor="alice", entity_type="policy",
               entity_id="p-1", digest={"n": source}, at=at)  # fmt: skip

    note("event:1", datetime(2026, 3, 1, 10))
    note("event:late", datetime(2026, 2, 1))  # appended now, happened before the period
    note("event:2", datetime(2026, 3, 2, 10, 0, 0, 250000))
    chain_all()
    store = FileStore.from_settings(settings)
    sink = store_package(TENANT, "audrey", "job-9", settings)
    start, until = "2026-03-01T00:00:00", "2026-04-01T00:00:00"
    descriptor = run_package(TENANT, start, until, "audrey", "job-9", PolicyApi(), sink)
    files = members(store, StoredFile.get_by_id(descriptor["file_id"]))

    log = check_package_alone(files)
    # The period's entries and the link between them that happened outside it
    assert [e["source_id"] for e in log] == ["event:1", "event:late", "event:2"]
