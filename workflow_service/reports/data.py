"""The rows of each report kind.

``policy_status`` and ``overdue_reviews`` read the tenant's policies from the api, one
page at a time (:func:`workflow_service.apiclient.iter_entities`), keeping only what the
report shows; ``approval_turnaround`` reads this service's approval tables.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from workflow_service.apiclient import iter_entities
from workflow_service.reports.definitions import (
    POLICY_STATUSES,
    ApprovalTurnaroundFilters,
    OverdueReviewsFilters,
    PolicyStatusFilters,
    as_datetime,
)

#: Most bars a chart draws (the table has every row).
CHART_BARS = 12


@dataclass
class Chart:
    title: str
    labels: list[str]
    #: series name -> one value per label
    series: dict[str, list[float]]


@dataclass
class ReportData:
    kind: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    filters: dict[str, Any]
    period: str
    generated_at: datetime
    chart: Chart | None = None
    #: Counts the job's result names beside the file (``rows`` always).
    counts: dict[str, int] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of sorted ``values``, linearly interpolated between
    the closest ranks (so p50 of an even count is the mean of the middle two)."""
    if not values:
        return math.nan
    position = (len(values) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return values[low] + (values[high] - values[low]) * (position - low)


def _stamp(at: datetime) -> str:
    return at.replace(microsecond=0).isoformat() + "Z"


def policy_status(api: Any, tenant: str, filters: PolicyStatusFilters, now: datetime) -> ReportData:
    counts: Counter[tuple[str, str, str]] = Counter()
    for policy in iter_entities(api, tenant, "policies", filters.described()):
        key = (
            str(policy.get("status") or ""),
            str(policy.get("policy_type") or ""),
            str(policy.get("owner") or ""),
        )
        counts[key] += 1
    order = {s: i for i, s in enumerate(POLICY_STATUSES)}
    rows = [
        [status, policy_type, owner, n]
        for (status, policy_type, owner), n in sorted(
            counts.items(), key=lambda item: (order.get(item[0][0], 99), item[0])
        )
    ]
    by_status: Counter[str] = Counter()
    for (status, _, _), n in counts.items():
        by_status[status] += n
    labels = sorted(by_status, key=lambda s: order.get(s, 99))
    return ReportData(
        kind="policy_status",
        title="Policies by status, type and owner",
        columns=["status", "policy_type", "owner", "policies"],
        rows=rows,
        filters=filters.described(),
        period=f"as of {_stamp(now)}",
        generated_at=now,
        chart=Chart("Policies by status", labels, {"policies": [by_status[s] for s in labels]}),
        counts={"rows": len(rows), "policies": sum(counts.values())},
    )


def overdue_reviews(
    api: Any, tenant: str, filters: OverdueReviewsFilters, now: datetime
) -> ReportData:
    today = now.date()
    horizon = today + timedelta(days=filters.within_days)
    params = {"policy_type": filters.policy_type, "owner": filters.owner}
    found = []
    for policy in iter_entities(api, tenant, "policies", params):
        raw = policy.get("next_review_date")
        if not raw or policy.get("status") == "archived":
            continue
        try:
            due = date.fromisoformat(str(raw)[:10])
        except ValueError:
            continue
        if due <= horizon:
            found.append((due, str(policy.get("title") or ""), policy))
    found.sort(key=lambda item: (item[0], item[1]))
    rows = [
        [
            title,
            str(p.get("id") or ""),
            str(p.get("policy_type") or ""),
            str(p.get("owner") or ""),
            str(p.get("status") or ""),
            due,
            (today - due).days,
            "overdue" if due < today else "due",
        ]
        for due, title, p in found
    ]
    per_owner: Counter[str] = Counter(str(p.get("owner") or "") for _, _, p in found)
    top = [owner for owner, _ in per_owner.most_common(CHART_BARS)]
    overdue = sum(1 for due, _, _ in found if due < today)
    return ReportData(
        kind="overdue_reviews",
        title="Policy reviews overdue or due soon",
        columns=[
            "title",
            "policy_id",
            "policy_type",
            "owner",
            "status",
            "next_review_date",
            "days_overdue",
            "state",
        ],
        rows=rows,
        filters=filters.described() | {"within_days": filters.within_days},
        period=f"reviews due on or before {horizon.isoformat()} (today {today.isoformat()})",
        generated_at=now,
        chart=Chart("Reviews by owner", top, {"reviews": [per_owner[o] for o in top]}),
        counts={"rows": len(rows), "overdue": overdue, "due_soon": len(rows) - overdue},
    )


def approval_turnaround(
    tenant: str, filters: ApprovalTurnaroundFilters, now: datetime
) -> ReportData:
    from workflow_service.approvals.models import ApprovalRequest, ApprovalSlot, ApprovalStatus
    from workflow_service.models import Execution, Workflow

    start, end = as_datetime(filters.from_), as_datetime(filters.until)
    decided = (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED)

    def window(column):
        condition = column.is_null(False)
        if start is not None:
            condition &= column >= start
        if end is not None:
            condition &= column < end
        return condition

    per_approver: dict[str, list[float]] = defaultdict(list)
    slots = (
        ApprovalSlot.select(ApprovalSlot.approver, ApprovalSlot.created_at, ApprovalSlot.decided_at)
        .where(
            (ApprovalSlot.tenant_id == tenant)
            & ApprovalSlot.status.in_(decided)
            & window(ApprovalSlot.decided_at)
        )
        .tuples()
        .iterator()
    )
    for approver, asked, answered in slots:
        per_approver[approver].append(_hours(asked, answered))

    per_workflow: dict[str, list[float]] = defaultdict(list)
    requests = (
        ApprovalRequest.select(
            Workflow.name, ApprovalRequest.created_at, ApprovalRequest.decided_at
        )
        .join(Execution, on=ApprovalRequest.execution == Execution.id)
        .join(Workflow, on=Execution.workflow == Workflow.id)
        .where(
            (ApprovalRequest.tenant_id == tenant)
            & ApprovalRequest.status.in_(decided)
            & window(ApprovalRequest.decided_at)
        )
        .tuples()
        .iterator()
    )
    for name, asked, answered in requests:
        per_workflow[name].append(_hours(asked, answered))

    rows: list[list[Any]] = []
    for scope, groups in (("approver", per_approver), ("workflow", per_workflow)):
        for name in sorted(groups):
            hours = sorted(groups[name])
            rows.append(
                [
                    scope,
                    name,
                    len(hours),
                    round(percentile(hours, 0.5), 2),
                    round(percentile(hours, 0.9), 2),
                ]
            )
    chart_rows = [r for r in rows if r[0] == "workflow"][:CHART_BARS]
    described = filters.described()
    period = f"{described.get('from', 'the beginning')} to {described.get('until', _stamp(now))}"
    return ReportData(
        kind="approval_turnaround",
        title="Approval turnaround (hours from request to decision)",
        columns=["scope", "name", "decisions", "p50_hours", "p90_hours"],
        rows=rows,
        filters=described,
        period=period,
        generated_at=now,
        chart=Chart(
            "Turnaround per workflow (hours)",
            [r[1] for r in chart_rows],
            {"p50": [r[3] for r in chart_rows], "p90": [r[4] for r in chart_rows]},
        ),
        counts={
            "rows": len(rows),
            "decisions": sum(len(v) for v in per_workflow.values()),
            "approver_decisions": sum(len(v) for v in per_approver.values()),
        },
    )


def _hours(asked: datetime, answered: datetime) -> float:
    return max((answered - asked).total_seconds(), 0.0) / 3600


Builder = Callable[[Any, str, Any, datetime], ReportData]


def build(kind: str, api: Any, tenant: str, filters: Any, now: datetime) -> ReportData:
    if kind == "policy_status":
        return policy_status(api, tenant, filters, now)
    if kind == "overdue_reviews":
        return overdue_reviews(api, tenant, filters, now)
    if kind == "approval_turnaround":
        return approval_turnaround(tenant, filters, now)
    raise ValueError(f"unknown report kind {kind!r}")
