"""Expected, retried failures are one log line; their tracebacks appear at DEBUG only."""

from __future__ import annotations

import logging

import dramatiq
import pytest
from dramatiq import Worker

from shared.broker import create_broker
from shared.logs import WORKER_LOGGER, quiet_expected_errors
from shared.settings import CommonSettings
from tests.support import poll


class ReceiverDown(Exception):
    """Stands for a webhook receiver's 5xx or an unreachable database."""


@pytest.fixture
def run_failing(redis_url, namespace, caplog):
    broker = create_broker(
        CommonSettings(redis_url=redis_url, namespace=namespace, retry_delay_scale=0.01)
    )
    seen = []

    def fail(kind: str) -> None:
        seen.append(kind)
        raise ReceiverDown("receiver answered 503") if kind == "expected" else RuntimeError("bug")

    actor = dramatiq.actor(
        fail, broker=broker, actor_name="fail", queue_name="governance.audit", max_retries=0
    )
    installed = quiet_expected_errors(lambda exc: isinstance(exc, ReceiverDown))
    worker = Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()

    def run(kind: str) -> list[logging.LogRecord]:
        caplog.clear()
        actor.send(kind)
        poll(lambda: seen.count(kind) and caplog.records, message="the failure logged")
        poll(lambda: any("Retries exceeded" in r.getMessage() for r in caplog.records))
        return [r for r in caplog.records if r.name == WORKER_LOGGER]

    yield run
    worker.stop()
    broker.close()
    logging.getLogger(WORKER_LOGGER).removeFilter(installed)


def test_an_expected_error_is_one_warning_line_without_traceback(run_failing, caplog):
    caplog.set_level(logging.INFO)
    [record] = run_failing("expected")
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert "ReceiverDown: receiver answered 503" in record.getMessage()
    assert "\n" not in record.getMessage()


def test_its_traceback_shows_at_debug(run_failing, caplog):
    caplog.set_level(logging.DEBUG)
    [record] = [r for r in run_failing("expected") if r.exc_info]
    assert "ReceiverDown" in record.getMessage()
    assert isinstance(record.exc_info[1], ReceiverDown)


def test_an_unexpected_error_keeps_its_traceback_at_error(run_failing, caplog):
    caplog.set_level(logging.INFO)
    [record] = run_failing("unexpected")
    assert record.levelno == logging.ERROR
    assert isinstance(record.exc_info[1], RuntimeError)


def test_any_logger_can_have_its_expected_errors_quieted(caplog):
    # The api's relay logs a round lost to an unreachable database this way.
    name = "tests.relay-like"
    installed = quiet_expected_errors(lambda exc: isinstance(exc, ReceiverDown), name)
    caplog.set_level(logging.INFO)
    try:
        for error in (ReceiverDown("database is down"), RuntimeError("bug")):
            try:
                raise error
            except Exception:
                logging.getLogger(name).exception("relay round failed; retrying in %.1fs", 1.0)
    finally:
        logging.getLogger(name).removeFilter(installed)
    quiet, loud = caplog.records
    assert quiet.getMessage() == (
        "relay round failed; retrying in 1.0s: ReceiverDown: database is down"
    )
    assert (quiet.levelno, quiet.exc_info) == (logging.WARNING, None)
    assert loud.levelno == logging.ERROR and loud.exc_info is not None
