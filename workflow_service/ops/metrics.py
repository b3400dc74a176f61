"""Prometheus series of the queues, read from Redis when scraped.

Depths come from Dramatiq's own keys; processed / failed / retried counters and the
duration histogram are kept in Redis by the job-status middleware of every worker, so
one scrape of the workflow web sees the whole fleet, however many workers run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from shared.jobstatus import DURATION_BUCKETS, STATES, JobStatusStore
from shared.queues import QUEUE_NAMES
from workflow_service.ops.broker_state import BrokerState

log = logging.getLogger(__name__)

PREFIX = "governance"
COUNTED = {
    "enqueued": "Jobs sent to the queue (first sends and operator retries)",
    "processed": "Attempts that finished, whatever the outcome",
    "succeeded": "Jobs that succeeded",
    "failed": "Jobs that failed for good (dead-lettered)",
    "retried": "Retries scheduled after a failed attempt",
}


class QueueCollector:
    """A custom collector: register it on the registry the ``/metrics`` route serves."""

    def __init__(self, store: JobStatusStore, state: BrokerState):
        self.store = store
        self.state = state

    def describe(self) -> list[Metric]:
        return []  # collected from Redis on scrape only, never at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_queue_scrape_ok", "1 when the queue series could be read from Redis"
        )
        try:
            families = list(self._collect())
        except redis.RedisError as exc:
            log.warning("could not read queue metrics from Redis: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _collect(self) -> Iterator[Metric]:
        queues = list(QUEUE_NAMES)
        depths = self.state.depths(queues)
        summaries = self.store.summaries(queues)
        paused = self.state.paused()
        gauges = {
            "depth": GaugeMetricFamily(
                f"{PREFIX}_queue_depth", "Messages ready to run", labels=["queue"]
            ),
            "delayed": GaugeMetricFamily(
                f"{PREFIX}_queue_delayed", "Messages waiting for a retry time", labels=["queue"]
            ),
            "in_flight": GaugeMetricFamily(
                f"{PREFIX}_queue_in_flight",
                "Messages fetched by a worker, not yet acked",
                labels=["queue"],
            ),
            "dead": GaugeMetricFamily(
                f"{PREFIX}_queue_dead", "Messages in the dead-letter queue", labels=["queue"]
            ),
            "workers": GaugeMetricFamily(
                f"{PREFIX}_queue_workers",
                "Worker processes seen consuming the queue",
                labels=["queue"],
            ),
            "paused": GaugeMetricFamily(
                f"{PREFIX}_queue_paused",
                "1 while an operator has paused the queue (workers take no new message)",
                labels=["queue"],
            ),
        }
        kept = GaugeMetricFamily(
            f"{PREFIX}_jobs_records",
            "Job-status records kept, by state",
            labels=["queue", "state"],
        )
        counters = {
            name: CounterMetricFamily(f"{PREFIX}_jobs_{name}", help_, labels=["queue"])
            for name, help_ in COUNTED.items()
        }
        duration = HistogramMetricFamily(
            f"{PREFIX}_job_duration_seconds", "Duration of each attempt", labels=["queue"]
        )
        for queue in queues:
            depth = depths[queue]
            gauges["depth"].add_metric([queue], depth.ready)
            gauges["delayed"].add_metric([queue], depth.delayed)
            gauges["in_flight"].add_metric([queue], depth.in_flight)
            gauges["dead"].add_metric([queue], depth.dead)
            summary = summaries[queue]
            gauges["workers"].add_metric([queue], len(summary["workers"]))
            gauges["paused"].add_metric([queue], 1 if queue in paused else 0)
            for state in STATES:
                kept.add_metric([queue, state], summary["counts"][state])
            stats = summary["stats"]
            for name, family in counters.items():
                family.add_metric([queue], stats.get(name, 0.0))
            cumulative = 0.0
            buckets = []
            for bound in DURATION_BUCKETS:
                cumulative += stats.get(f"le:{bound:g}", 0.0)
                buckets.append((f"{bound:g}", cumulative))
            cumulative += stats.get("le:+Inf", 0.0)
            buckets.append(("+Inf", cumulative))
            duration.add_metric([queue], buckets, stats.get("duration_sum", 0.0))
        yield from gauges.values()
        yield kept
        yield from counters.values()
        yield duration
