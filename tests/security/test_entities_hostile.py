"""Assessments, evidence and policy reviews under hostile or careless use: input that
must be a 4xx (never a 500), files whose bytes are not what their type says, and
hand-overs that would let someone decide on their own work."""

# ruff: noqa: F811 - the api tests' fixtures, imported, are parameters here
from __future__ import annotations

import pytest

from tests.api.conftest import (  # noqa: F401 - fixtures
    api_database_url,
    api_settings,
    client,
    entity_settings,
    evidence_dir,
    make_app,
)

# -- input ------------------------------------------------------------------------


@pytest.mark.parametrize("collected_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_collection_time_out_of_range_in_utc_is_a_422(client, collected_at):
    body = {"title": "Log export", "kind": "log", "collected_at": collected_at}
    resp = client.post("/evidence", body)
    assert resp.status_code == 422, resp.text
    assert resp.json["errors"][0]["field"] == "collected_at"
    assert "UTC" in resp.json["description"]

    eid = client.evidence()["id"]
    resp = client.edit(f"/evidence/{eid}", {"collected_at": collected_at}, 1)
    assert resp.status_code == 422, resp.text
