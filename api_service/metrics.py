"""Prometheus metrics of the api beyond per-request ones: the outbox backlog."""

from __future__ import annotations

import logging
import math

import peewee
from prometheus_client.core import GaugeMetricFamily

from api_service.models import Outbox

log = logging.getLogger(__name__)


class OutboxBacklogCollector:
    """Reads the backlog at scrape time, so every process reports the shared truth."""

    def __init__(self, db: peewee.Database, clock):
        self.db = db
        self.clock = clock

    def describe(self):
        yield GaugeMetricFamily("api_outbox_backlog", "Outbox events not yet published")
        yield GaugeMetricFamily(
            "api_outbox_oldest_unsent_seconds", "Age of the oldest unpublished outbox event"
        )

    def collect(self):
        backlog, age = math.nan, math.nan
        opened = self.db.is_closed()
        try:
            if opened:
                self.db.connect()
            unsent = Outbox.select().where(Outbox.sent_at.is_null())
            backlog = unsent.count()
            oldest = unsent.order_by(Outbox.id).first()
            age = (self.clock() - oldest.created_at).total_seconds() if oldest else 0.0
        except peewee.DatabaseError:
            log.warning("could not read the outbox backlog", exc_info=True)
        finally:
            if opened and not self.db.is_closed():
                self.db.close()
        yield GaugeMetricFamily(
            "api_outbox_backlog", "Outbox events not yet published", value=backlog
        )
        yield GaugeMetricFamily(
            "api_outbox_oldest_unsent_seconds",
            "Age of the oldest unpublished outbox event",
            value=age,
        )
