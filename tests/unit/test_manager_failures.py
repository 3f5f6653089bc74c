"""A failing tick logs its traceback once per kind of failure, then one line per repeat."""

from __future__ import annotations

import logging

import pytest

from corral.manager.failures import RepeatedFailures

log = logging.getLogger("test.failures")


def fail(failures: RepeatedFailures, error: Exception) -> None:
    try:
        raise error
    except Exception as e:
        failures.failed(e)


def test_same_failure_again_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    failures = RepeatedFailures(log, "manager tick")
    with caplog.at_level(logging.INFO, logger="test.failures"):
        for _ in range(3):
            fail(failures, ConnectionError("etcd unreachable"))
    first, *again = caplog.records
    assert first.exc_info is not None and first.levelno == logging.ERROR
    assert [r.exc_info for r in again] == [None, None]
    assert [r.getMessage() for r in again] == [
        "manager tick failed again (2 in a row): ConnectionError: etcd unreachable",
        "manager tick failed again (3 in a row): ConnectionError: etcd unreachable",
    ]


def test_a_different_failure_or_a_success_starts_afresh(
        caplog: pytest.LogCaptureFixture) -> None:
    failures = RepeatedFailures(log, "manager tick")
    with caplog.at_level(logging.INFO, logger="test.failures"):
        fail(failures, ConnectionError("etcd unreachable"))
        fail(failures, ValueError("bad record"))
        failures.succeeded()
        failures.succeeded()  # nothing to say: it had not failed
        fail(failures, ValueError("bad record"))
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 3
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "manager tick works again (it had failed 1 in a row)"]
