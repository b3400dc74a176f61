"""Bad input is a 4xx JSON answer with a title and a description naming the field."""

from __future__ import annotations

import json

import pytest

from tests.api.helpers import auth, error_names


def _post(api, body, headers=None, path="/policies"):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return api.client.simulate_post(
        path,
        body=raw,
        headers={"Content-Type": "application/json", **api.headers("editor"), **(headers or {})},
    )


def _assert_error(resp, status: int, *words: str):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert set(resp.json) >= {"title", "description"}
    assert error_names(resp, *words), resp.json


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"title": "x",', ("Malformed JSON", "line 1")),
        ("not json", ("Malformed JSON",)),
        (b'{"title": "\xff"}', ("UTF-8",)),
        ("", ("body is required",)),
        ('{"version": ' + "1" * 5000 + "}", ("Malformed JSON", "digits")),
        ('{"title": "t", "policy_type": "p", "version": NaN}', ("NaN", "not a JSON number")),
    ],
    ids=["truncated", "not-json", "not-utf8", "empty", "huge-number", "nan"],
)
def test_malformed_bodies_are_400(api, body, words):
    _assert_error(_post(api, body), 400, *words)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": 5, "policy_type": "p"}, "title"),
        ({"title": "t", "policy_type": ["p"]}, "policy_type"),
        ({"title": "t", "policy_type": "p", "tags": "a,b"}, "tags"),
        ({"title": "t", "policy_type": "p", "tags": [1]}, "tags.0"),
        ({"title": "t", "policy_type": "p", "next_review_date": "tomorrow"}, "next_review_date"),
        ({"title": "t", "policy_type": "p", "review_frequency": "weekly"}, "review_frequency"),
        ({"title": "", "policy_type": "p"}, "title"),
        ({"policy_type": "p"}, "title"),
        ({"title": "t" * 201, "policy_type": "p"}, "title"),
    ],
    ids=[
        "int-title",
        "list-type",
        "tags-string",
        "tag-int",
        "bad-date",
        "bad-enum",
        "empty-title",
        "missing-title",
        "long-title",
    ],
)
def test_wrong_types_are_422_naming_the_field(api, body, field):
    resp = _post(api, body)
    _assert_error(resp, 422, field)
    assert field in [e["field"] for e in resp.json["errors"]]


def test_unknown_fields_are_422_naming_them(api):
    resp = _post(api, {"title": "t", "policy_type": "p", "colour": "red", "status": "approved"})
    _assert_error(resp, 422, "colour", "status", "unknown field")


def test_a_body_that_is_not_an_object_is_422(api):
    _assert_error(_post(api, [1, 2]), 422, "JSON object")


def test_an_oversized_body_is_413(api):
    body = {"title": "t", "policy_type": "p", "content": "x" * 20_000}
    _assert_error(_post(api, body), 413, "limit")


def test_a_non_json_content_type_is_415(api):
    resp = api.client.simulate_post(
        "/policies",
        body="title=t",
        headers={"Content-Type": "application/x-www-form-urlencoded", **api.headers("editor")},
    )
    _assert_error(resp, 415, "application/json")


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/transitions"), ("GET", "/versions")],
)
def test_a_bad_uuid_is_400_naming_the_parameter(api, method, suffix):
    resp = api.client.simulate_request(
        method,
        f"/policies/not-a-uuid{suffix}",
        json={"to": "in_review"} if method != "GET" else None,
        headers=api.headers("admin"),
    )
    _assert_error(resp, 400, "policy_id", "UUID")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"cursor": "garbage!"}, "cursor"),
        ({"cursor": "eyJ4IjoxfQ"}, "cursor"),  # valid base64 JSON, not our shape
        ({"cursor": "eyJ0Ijoibm9wZSIsImkiOiJ4In0"}, "cursor"),  # our shape, bad values
        (
            {"cursor": "eyJ0IjogIjIwMjQtMDEtMDFUMDA6MDA6MDAiLCAiaSI6IDV9"},
            "cursor",
        ),  # a number as id
        (
            {"cursor": "eyJ0IjogIjIwMjQtMDEtMDFUMDA6MDA6MDAiLCAiaSI6IFsxXX0"},
            "cursor",
        ),  # a list as id
        ({"limit": "ten"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1000"}, "limit"),
        ({"status": "done"}, "status"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_bad_list_parameters_are_400_naming_them(api, params, name):
    resp = api.client.simulate_get("/policies", params=params, headers=api.headers("viewer"))
    _assert_error(resp, 400, name)


def test_transition_body_and_headers_are_checked(api):
    policy = api.create()
    path = f"/policies/{policy['id']}/transitions"
    _assert_error(_post(api, {"to": "done"}, path=path), 422, "to")
    _assert_error(_post(api, {"to": "in_review", "why": 1}, path=path), 422, "why")
    _assert_error(_post(api, {"to": "in_review", "version": "1"}, path=path), 422, "version")
    _assert_error(_post(api, {"to": "in_review"}, {"If-Match": "abc"}, path=path), 400, "If-Match")
    _assert_error(
        _post(api, {"to": "in_review"}, {"X-Causation": "e-1"}, path=path), 403, "X-Causation"
    )
    service = {**api.headers("service"), "X-Causation": "a b,c"}
    _assert_error(_post(api, {"to": "in_review"}, service, path=path), 400, "X-Causation")
    _assert_error(
        _post(api, {"to": "in_review"}, {"X-Initiator": "bob"}, path=path), 403, "X-Initiator"
    )
    service = {**api.headers("service"), "X-Initiator": "x" * 129}
    _assert_error(_post(api, {"to": "in_review"}, service, path=path), 400, "X-Initiator")
    _assert_error(_post(api, {"to": "in_review"}, {"If-Match": "²"}, path=path), 400, "If-Match")
    _assert_error(
        _post(api, {"to": "in_review"}, {"Idempotency-Key": "k" * 201}, path=path),
        400,
        "Idempotency-Key",
    )


def test_patch_rejects_nulls_for_required_fields(api):
    policy = api.create()
    resp = api.patch(policy["id"], {"title": None}, version=1)
    _assert_error(resp, 422, "title")
    # Clearable fields may be null.
    assert api.patch(policy["id"], {"effective_date": None}, version=1).status_code == 200


def test_unknown_paths_and_methods_answer_json(api):
    _assert_error(api.client.simulate_get("/nope", headers=api.headers("viewer")), 404, "/nope")
    _assert_error(api.client.simulate_put("/policies", headers=api.headers("admin")), 405, "PUT")


def test_nul_characters_deep_nesting_and_odd_claims_are_4xx(api):
    # NUL cannot be stored (PostgreSQL refuses it in text): a 400 naming where it is
    _assert_error(_post(api, {"title": "a\u0000b", "policy_type": "x"}), 400, "body.title")
    resp = api.client.simulate_get("/policies", params={"q": "a\x00"}, headers=api.headers())
    _assert_error(resp, 400, "q")
    # A body nested past the parser's recursion limit is malformed, not a crash
    _assert_error(_post(api, "[" * 5000 + "]" * 5000), 400)
    # and so is one nested deeper than any request needs (it could not be stored)
    deep = {
        "title": "t",
        "policy_type": "p",
        "tags": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    }
    _assert_error(_post(api, deep), 400, "nested more than 32 levels", "body.tags")
    # A token whose tenant or subject could not be a key is refused like a bad token
    for claims in ({"tenant": "t" * 300}, {"sub": "x" * 300}, {"tenant": "a\nb"}):
        fields = {"sub": "alice", "tenant": "acme", **claims}
        headers = auth("editor", sub=fields["sub"], tenant=fields["tenant"])
        resp = api.client.simulate_get("/policies", headers=headers)
        assert resp.status_code == 401, resp.text
