"""The ops job page's detail (arguments redacted, attempts, traceback) and the search on
ops ``GET /jobs``; real Redis, Dramatiq's Worker in-process (see test_ops)."""

from __future__ import annotations

import dramatiq
import pytest

from shared.broker import actor_options
from tests.jobs import test_ops
from tests.jobs.test_ops import OPERATOR, QUEUE, token
from tests.support import poll

#: The ops routes on a Falcon app with a broker and a worker (test_ops' fixture).
system = test_ops.system

ADMIN = token(("admin",), "acme")
SECRET = "s3cr3t-Tok3n-value"


@pytest.fixture
def deliver(system):
    """A delivery actor that fails while the system is broken; started on a worker."""
    broken = f"{system.namespace}:test:broken"

    def send_mail(delivery_id, *, to, body, webhook_url, api_token):
        if system.broker.client.exists(broken):
            raise ConnectionError(f"mail relay refused for {delivery_id}")

    options = {**actor_options(QUEUE), "max_retries": 1}
    actor = dramatiq.actor(send_mail, broker=system.broker, actor_name="send_mail", **options)
    system.start_worker()
    return actor


def send(actor, delivery_id, tenant="acme"):
    return actor.send_with_options(
        args=(delivery_id,),
        kwargs={
            "to": "ann@example.com",
            "body": "Dear Ann, the quarterly policy is due.",
            "webhook_url": f"https://hook-user:{SECRET}@hooks.example.com/T0ABC123/in?sig={SECRET}",
            "api_token": SECRET,
        },
        tenant_id=tenant,
    ).message_id


def done(system, job_id, state):
    poll(
        lambda: (system.store.raw(job_id) or {}).get("state") == state,
        message=f"the job to be {state}",
    )


def test_job_detail_shows_attempts_the_traceback_and_redacted_arguments(system, deliver):
    # Given a delivery that fails on both of its attempts
    system.break_it()
    job = send(deliver, "8d7f2a56-4c1e-4a7e-9a57-3f0e6f1c2b11")
    done(system, job, "failed")

    resp = system.client.simulate_get(f"/jobs/{job}", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    body = resp.json
    # Then each attempt names its worker, its duration and its error
    assert [a["attempt"] for a in body["attempts"]] == [1, 2]
    assert [a["outcome"] for a in body["attempts"]] == ["retrying", "failed"]
    for attempt in body["attempts"]:
        assert attempt["worker"] and ":" in attempt["worker"]
        assert attempt["started_at"] and attempt["duration_ms"] is not None
        assert attempt["error"]["type"] == "ConnectionError"
    # the last failure's traceback, bounded
    assert "in send_mail" in body["traceback"]
    assert "ConnectionError: mail relay refused" in body["traceback"]
    assert len(body["traceback"]) <= 8192
    # and the arguments with their secrets redacted, the body folded
    kwargs = body["arguments"]["kwargs"]
    assert body["arguments"]["args"] == ["8d7f2a56-4c1e-4a7e-9a57-3f0e6f1c2b11"]
    assert kwargs["api_token"] == "***"
    assert kwargs["body"] == "(folded: 38 characters)"
    assert kwargs["to"] == "ann@example.com"
    assert kwargs["webhook_url"].startswith("https://***@hooks.example.com/")
    assert SECRET not in resp.text

    # An operator sees ids, not tenant content
    resp = system.client.simulate_get(f"/jobs/{job}", headers=OPERATOR)
    assert resp.status_code == 200, resp.text
    arguments = resp.json["arguments"]
    assert arguments["args"] == ["8d7f2a56-4c1e-4a7e-9a57-3f0e6f1c2b11"]
    assert set(arguments["kwargs"].values()) == {"(tenant data)"}
    assert resp.json["traceback"] and SECRET not in resp.text

    # Another tenant's admin does not see the job at all
    other = system.client.simulate_get(f"/jobs/{job}", headers=token(("admin",), "globex"))
    assert other.status_code == 404


def test_search_by_error_text_and_actor_pages_through_the_callers_jobs(system, deliver):
    system.break_it()
    mine = [send(deliver, f"0000000{n}-4c1e-4a7e-9a57-3f0e6f1c2b11") for n in range(5)]
    theirs = send(deliver, "00000009-4c1e-4a7e-9a57-3f0e6f1c2b11", tenant="globex")
    for job in [*mine, theirs]:
        done(system, job, "failed")
    system.fix_it()
    fine = send(deliver, "00000008-4c1e-4a7e-9a57-3f0e6f1c2b11")
    done(system, fine, "succeeded")

    def search(headers, **params):
        found, cursor = [], None
        while True:
            query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            resp = system.client.simulate_get("/jobs", params=query, headers=headers)
            assert resp.status_code == 200, resp.text
            found += [item["id"] for item in resp.json["items"]]
            cursor = resp.json["next_cursor"]
            if cursor is None:
                return found

    # Error text: the admin finds its five failed jobs over three pages, not globex's
    assert sorted(search(ADMIN, q="relay REFUSED")) == sorted(mine)
    # an operator finds every tenant's
    assert sorted(search(OPERATOR, q="relay refused")) == sorted([*mine, theirs])
    # Actor and state
    assert search(ADMIN, actor="send_mail", state="succeeded") == [fine]
    assert len(search(ADMIN, actor="send_mail")) == 6
    # A time range in the future finds nothing; a bad one is a 400
    assert search(ADMIN, actor="send_mail", since="2999-01-01T00:00:00Z") == []
    resp = system.client.simulate_get("/jobs", params={"since": "yesterday"}, headers=ADMIN)
    assert resp.status_code == 400
    resp = system.client.simulate_get("/jobs", params={"q": "a"}, headers=ADMIN)
    assert resp.status_code == 400
