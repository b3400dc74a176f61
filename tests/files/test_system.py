"""Reports end to end: both services under gunicorn, a Dramatiq worker on
governance.reporting (and the policy and notification queues), real Redis.

A report asked for on the workflow web runs on the reporting worker, reads the
tenant's policies from the api with a service token, stores its file under FILES_DIR
(shared by the worker and the web), and its job's result, the file's descriptor, is
shown by ``/jobs/{id}`` on both services; the file downloads from ``/files/{id}``.
"""

from __future__ import annotations

import hashlib
import io

import pytest

from tests.support import poll
from tests.system import System

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(tmp_path_factory, make_database_url, redis_url):
    log_dir = tmp_path_factory.mktemp("reports-system")
    env = {"FILES_DIR": str(log_dir / "files"), "RETRY_DELAY_SCALE": "0.05"}
    queues = ["governance.reporting", "governance.policy", "governance.notification"]
    with System.running(
        log_dir, make_database_url, redis_url, env=env, queues=queues, workers=1
    ) as system:
        yield system


def _finished(client, job_id: str):
    answer = client.get(f"/jobs/{job_id}")
    if answer.status_code == 200 and answer.json()["state"] in ("succeeded", "failed"):
        return answer.json()
    return None


def test_a_report_runs_on_the_reporting_worker_and_its_result_names_the_file(system):
    api = system.api_client(sub="olivia", roles=["editor"])
    for title, owner in [("Access", "ann"), ("Backups", "ann"), ("=cmd|calc", "ben")]:
        created = api.post(
            "/policies", json={"title": title, "policy_type": "security", "owner": owner}
        )
        assert created.status_code == 201, created.text

    workflow = system.workflow_client(sub="olivia", roles=["editor"])
    asked = workflow.post("/reports", json={"kind": "policy_status", "format": "xlsx"})
    assert asked.status_code == 202, asked.text
    job = asked.json()["job"]

    # The api's /jobs/{id} (the tenant's readers) shows the job and its result.
    record = poll(lambda: _finished(api, job["id"]), timeout=60, message="the report job")
    assert record["state"] == "succeeded", record
    assert (record["queue"], record["actor"]) == ("governance.reporting", "generate_report")
    descriptor = record["result"]["value"]
    assert descriptor["rows"] == 2 and descriptor["policies"] == 3
    assert descriptor["href"] == f"/files/{descriptor['file_id']}"
    assert set(descriptor) >= {"file_id", "name", "size", "sha256", "href", "expires_at"}

    # The workflow service's /jobs/{id} (the tenant's admin) shows the same result.
    admin = system.workflow_client(sub="root", roles=["admin"])
    ops_record = admin.get(f"/jobs/{job['id']}")
    assert ops_record.status_code == 200, ops_record.text
    assert ops_record.json()["result"]["value"] == descriptor

    # Another tenant sees neither the job nor the file.
    stranger = system.api_client(sub="gina", roles=["editor"], tenant="globex")
    assert stranger.get(f"/jobs/{job['id']}").status_code == 404
    other_web = system.workflow_client(sub="gina", roles=["admin"], tenant="globex")
    assert other_web.get(descriptor["href"]).status_code == 404

    # The file downloads, whole, and opens as a workbook with its formula neutralised.
    from openpyxl import load_workbook

    download = workflow.get(descriptor["href"])
    assert download.status_code == 200
    assert len(download.content) == descriptor["size"]
    assert hashlib.sha256(download.content).hexdigest() == descriptor["sha256"]
    rows = list(load_workbook(io.BytesIO(download.content))["Report"].iter_rows(values_only=True))
    assert rows[0] == ("status", "policy_type", "owner", "policies")
    assert ("draft", "security", "ann", 2) in rows
