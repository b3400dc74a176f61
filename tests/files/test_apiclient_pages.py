"""Reading a whole api collection page by page with the service token."""

from __future__ import annotations

import pytest

from tests.files.conftest import OTHER_TENANT, TENANT, add_policy
from workflow_service.apiclient import ApiRefused, iter_entities


class CountingApi:
    def __init__(self, api):
        self.api = api
        self.paths: list[str] = []

    def request(self, method, path, tenant_id, **kwargs):
        self.paths.append(path)
        return self.api.request(method, path, tenant_id, **kwargs)


def test_every_item_is_read_one_page_at_a_time(api_app, api):
    created = [add_policy(api_app, title=f"P{i}", owner=f"owner{i % 3}") for i in range(23)]
    add_policy(api_app, OTHER_TENANT, title="not ours")
    counting = CountingApi(api)

    items = iter_entities(counting, TENANT, "policies", {"status": "draft"}, page_size=5)
    first = next(items)
    # Lazy: one page asked for the first item.
    assert len(counting.paths) == 1
    rest = list(items)

    assert {p["id"] for p in [first, *rest]} == {p["id"] for p in created}
    assert len(counting.paths) == 5  # 5 + 5 + 5 + 5 + 3
    assert all("status=draft" in p and "limit=5" in p for p in counting.paths)
    assert sum("cursor=" in p for p in counting.paths) == 4


def test_filters_select_and_a_refused_filter_is_an_error(api_app, api):
    add_policy(api_app, title="A", owner="ann")
    add_policy(api_app, title="B", owner="ben")
    assert [p["title"] for p in api.iter_entities(TENANT, "policies", {"owner": "ben"})] == ["B"]
    with pytest.raises(ApiRefused):
        list(api.iter_entities(TENANT, "policies", {"status": "nonsense"}))
