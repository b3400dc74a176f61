"""``POST /exports``: what is checked at the request (a clear 4xx, nothing sent) and the
message a good request sends; the writers' output for a few awkward values."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.batch.conftest import OTHER_TENANT, auth
from workflow_service.exports.formats import WRITERS

AUDITOR = auth("audrey", ["auditor"])


def test_an_export_request_sends_one_message_for_the_callers_tenant(client, outbox):
    body = {"entity_type": "policy", "format": "xlsx", "filters": {"status": "published"}}
    answer = client.simulate_post("/exports", json=body, headers=AUDITOR)
    assert answer.status_code == 202, answer.text
    [message] = outbox.messages
    assert answer.json == {"job": {"id": message.message_id, "href": f"/jobs/{message.message_id}"}}
    assert (message.queue_name, message.actor_name) == ("governance.export", "export_entities")
    assert message.options["tenant_id"] == "acme"
    assert message.args == (
        "acme",
        {
            "entity_type": "policy",
            "format": "xlsx",
            "filters": {"status": "published"},
            "requested_by": "audrey",
        },
    )
    other = client.simulate_post(
        "/exports", json=body, headers=auth("gina", ["admin"], OTHER_TENANT)
    )
    assert other.status_code == 202 and outbox.messages[-1].args[0] == OTHER_TENANT


@pytest.mark.parametrize(
    "body,status,title",
    [
        ({"entity_type": "widget", "format": "csv"}, 422, None),
        ({"entity_type": "policy", "format": "pdf"}, 422, None),
        ({"entity_type": "policy", "format": "csv", "colour": 1}, 422, None),
        (
            {"entity_type": "policy", "format": "csv", "filters": {"colour": "x"}},
            422,
            "Unknown filter",
        ),
        (
            {"entity_type": "policy", "format": "csv", "filters": {"status": "lost"}},
            422,
            "Invalid filter",
        ),
        (
            {"entity_type": "policy", "format": "csv", "filters": {"owner": ""}},
            422,
            "Invalid filter",
        ),
        (
            {"entity_type": "policy", "format": "csv", "filters": {"q": "x" * 201}},
            422,
            "Invalid filter",
        ),
        ({"entity_type": "policy", "format": "csv", "filters": {"q": 5}}, 422, None),
    ],
)
def test_a_bad_export_request_is_a_422_and_sends_nothing(client, outbox, body, status, title):
    answer = client.simulate_post("/exports", json=body, headers=AUDITOR)
    assert answer.status_code == status, answer.text
    assert answer.json["title"] and answer.json["description"]
    if title:
        assert answer.json["title"] == title
    assert outbox.messages == []


def test_not_json_is_a_415(client, outbox):
    answer = client.simulate_post(
        "/exports", body=b"a,b", headers={**AUDITOR, "Content-Type": "text/csv"}
    )
    assert answer.status_code == 415 and outbox.messages == []


@pytest.mark.parametrize("role", ["viewer", "approver", "operator"])
def test_viewers_approvers_and_operators_do_not_export(client, outbox, role):
    body = {"entity_type": "policy", "format": "csv"}
    answer = client.simulate_post("/exports", json=body, headers=auth("u", [role]))
    assert answer.status_code == 403 and outbox.messages == []


ITEM = {
    "id": "p1",
    "title": '=HYPERLINK("http://x")',
    "content": "line\x01one\nline two",
    "tags": ["a", "b"],
    "version": 3,
    "review_frequency": None,
}
COLUMNS = ("id", "title", "content", "tags", "version", "review_frequency")


def _write(file_format: str) -> bytes:
    out = io.BytesIO()
    writer = WRITERS[file_format](out, COLUMNS)
    writer.row(ITEM)
    writer.close()
    return out.getvalue()


def test_csv_cells_are_neutralised_and_lists_joined():
    [header, row] = list(csv.reader(io.StringIO(_write("csv").decode())))
    assert header == list(COLUMNS)
    assert row == ["p1", "'" + ITEM["title"], ITEM["content"], "a; b", "3", ""]


def test_xlsx_cells_are_neutralised_and_control_characters_dropped():
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(_write("xlsx"))).active
    [header, row] = list(sheet.iter_rows(values_only=True))
    assert header == COLUMNS
    assert row[:5] == ("p1", "'" + ITEM["title"], "lineone\nline two", "a; b", 3)


def test_json_is_the_items_as_they_are():
    assert json.loads(_write("json")) == [ITEM]


def test_xlsx_rows_are_spooled_in_the_given_directory_not_tmp(tmp_path):
    from openpyxl import load_workbook

    spool = tmp_path / "spool"
    out = io.BytesIO()
    writer = WRITERS["xlsx"](out, COLUMNS, spool_dir=spool)
    for _ in range(50):
        writer.row(ITEM)
    [spooled] = list(spool.iterdir())
    assert spooled.stat().st_size > 0
    writer.close()
    assert list(spool.iterdir()) == []
    assert len(list(load_workbook(io.BytesIO(out.getvalue())).active.iter_rows())) == 51
    # A failed export leaves nothing behind either.
    failed = WRITERS["xlsx"](io.BytesIO(), COLUMNS, spool_dir=spool)
    failed.row(ITEM)
    failed.discard()
    assert list(spool.iterdir()) == []
