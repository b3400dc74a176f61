import pytest

from shared.queues import CATALOG, ENTITY_QUEUES, base_queue_name, spec_for


def test_catalog_holds_the_eight_queues_of_the_design():
    assert {
        name: (s.attempts, s.backoff, s.delay_ms, s.time_limit_ms) for name, s in CATALOG.items()
    } == {
        "governance.policy": (5, "exponential", 2000, 600_000),
        "governance.assessment": (3, "fixed", 5000, 600_000),
        "governance.evidence": (5, "exponential", 3000, 600_000),
        "governance.notification": (10, "fixed", 1000, 600_000),
        "governance.reporting": (2, "none", 0, 300_000),
        "governance.export": (3, "none", 0, 180_000),
        "governance.audit": (2, "none", 0, 600_000),
        "governance.import": (3, "none", 0, 120_000),
    }
    assert all(s.keep_succeeded == 100 and s.keep_failed == 1000 for s in CATALOG.values())
    assert all(":" not in name for name in CATALOG)


def test_attempts_count_the_first_run():
    assert spec_for("governance.policy").max_retries == 4
    assert spec_for("governance.notification").max_retries == 9


@pytest.mark.parametrize(
    ("queue", "delays"),
    [
        ("governance.policy", [2000, 4000, 8000, 16000]),
        ("governance.evidence", [3000, 6000, 12000, 24000]),
        ("governance.notification", [1000] * 9),
        ("governance.assessment", [5000, 5000]),
        ("governance.reporting", [0]),
    ],
)
def test_retry_delays_follow_the_catalog_without_jitter(queue, delays):
    spec = spec_for(queue)
    assert [spec.retry_delay_ms(n) for n in range(1, spec.attempts)] == delays


def test_delay_scale_shortens_every_delay():
    assert spec_for("governance.policy").retry_delay_ms(3, scale=0.01) == 80


def test_delay_and_dead_letter_queues_resolve_to_their_queue():
    assert base_queue_name("governance.policy.DQ") == "governance.policy"
    assert spec_for("governance.audit.XQ").name == "governance.audit"
    assert set(ENTITY_QUEUES.values()) <= set(CATALOG)
    with pytest.raises(KeyError):
        spec_for("default")
