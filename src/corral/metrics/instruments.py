"""This process's own timings, kept in prometheus_client's default registry (which also holds
the process collector: CPU, memory, open files of this process)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from corral.metrics import names

# `_created` series (when each label set first appeared) double the output and no panel
# uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]
P = ParamSpec("P")
T = TypeVar("T")

API_REQUEST = Histogram(names.API_REQUEST.name, names.API_REQUEST.help,
                        names.API_REQUEST.labels, buckets=names.REQUEST_BUCKETS)
API_SHED = Counter(names.API_SHED.name, names.API_SHED.help)
API_IN_FLIGHT_LIMIT = Gauge(names.API_IN_FLIGHT_LIMIT.name, names.API_IN_FLIGHT_LIMIT.help)
ETCD_REQUEST = Histogram(names.ETCD_REQUEST.name, names.ETCD_REQUEST.help,
                         names.ETCD_REQUEST.labels, buckets=names.ETCD_BUCKETS)
MANAGER_DECIDE = Histogram(names.MANAGER_DECIDE.name, names.MANAGER_DECIDE.help,
                           buckets=names.DECIDE_BUCKETS)
MANAGER_PASS = Histogram(names.MANAGER_PASS.name, names.MANAGER_PASS.help,
                         buckets=names.DECIDE_BUCKETS)


def timed_etcd_call(operation: str, call: Callable[P, Awaitable[T]]
                    ) -> Callable[P, Awaitable[T]]:
    """call, observed in ETCD_REQUEST under operation (the client method's name: a small,
    fixed set) for as long as its caller waits, retries included."""
    observe = ETCD_REQUEST.labels(operation)

    async def timed(*args: P.args, **kwargs: P.kwargs) -> T:
        with observe.time():
            return await call(*args, **kwargs)

    return timed
