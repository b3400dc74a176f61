"""deploy/prometheus/alerts.yaml: well formed, and every series a rule reads is one our
/metrics exports (a renamed metric must not silently disarm an alert)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from api_service.metrics import OutboxBacklogCollector
from shared.jobstatus import JobStatusStore
from workflow_service.ops.broker_state import BrokerState
from workflow_service.ops.insight import FleetCollector
from workflow_service.ops.metrics import QueueCollector

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yaml"
#: What the issue asks the rules to cover, by alert name.
REQUIRED = {
    "QueueBacklogDeep",
    "QueueOldestMessageOld",
    "DeadLettersGrowing",
    "QueueWithoutWorker",
    "OutboxBacklogOld",
    "SchedulerWithoutLeader",
}
#: PromQL words that are not series names.
PROMQL_WORDS = {
    "max", "min", "sum", "avg", "count", "by", "without", "on", "ignoring", "and", "or",
    "unless", "delta", "rate", "increase", "deriv", "absent", "bool", "group_left",
    "group_right", "offset", "humanizeDuration",
}  # fmt: skip


def rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def series_in(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\([^()]*\)\s*(?=\()", " ", expr)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_labels))
    return {n for n in names if n not in PROMQL_WORDS and not n.isdigit()}


def exported(redis_client, namespace) -> set[str]:
    registry = CollectorRegistry()
    registry.register(
        QueueCollector(
            JobStatusStore(redis_client, namespace), BrokerState(redis_client, namespace)
        )
    )
    registry.register(FleetCollector(redis_client, namespace, time.time))
    names = set()
    for family in registry.collect():
        names.update(sample.name for sample in family.samples)
    # The api's outbox series, by their description (reading them needs its database).
    outbox = OutboxBacklogCollector(db=None, clock=None)
    names.update(family.name for family in outbox.describe())
    return names


def test_the_rules_cover_what_operators_need_and_read_exported_series(redis_client, namespace):
    found = rules()
    assert {rule["alert"] for rule in found} >= REQUIRED
    available = exported(redis_client, namespace)
    for rule in found:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        used = series_in(rule["expr"])
        assert used, rule["expr"]
        assert used <= available, f"{rule['alert']} reads {used - available}"


def test_promtool_accepts_the_rules():
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool is not installed (run: bash deploy/local/system-packages.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
