"""How long after a client's last feed its host is fenced at the latest, and whether that fits
the host's lease. Pure: the figures the watchdogs acknowledge and the agent checks."""

from __future__ import annotations

# What the agent keeps between its host's fence and its lease's end (see fits_lease): the
# watchdog's timer and etcd's lease timer run on different clocks and processes.
FIT_MARGIN = 0.5


def mux_fence_time(client_timeout: float, interval: float, device_timeout: float) -> float:
    """From a client's last feed to the host's reset, at the latest, under the mux.

    The mux stamps a feed when it reads it (never before the client sent it) and writes to the
    device at a tick only while every armed client's stamp is at most `client_timeout` old.
    So the last write for a client that stopped feeding comes at most client_timeout after its
    last feed, plus `interval` for the mux's own latency: the feed may wait in the socket while
    a tick runs, and the write follows the check within the tick (both far below one interval
    unless the mux itself stalls). The device then resets the host at most `device_timeout`
    (the timeout it reads back, not the one asked for) after that last write.
    """
    return client_timeout + interval + device_timeout


def labdog_fence_time(timeout: float, tick: float) -> float:
    """The lab watchdog checks its timer every `tick`: it kills at most one tick late."""
    return timeout + tick


def fits_lease(fence: float, renew_interval: float, lease_ttl: float,
               margin: float = FIT_MARGIN) -> bool:
    """Whether a hung agent's host is fenced before its lease expires.

    The agent feeds right after etcd confirmed a renewal; etcd may have accepted it up to one
    renew interval earlier (each attempt may take that long), and the lease then ends lease_ttl
    after the acceptance. The last feed is thus at most renew_interval after the lease's last
    renewal, and the fence at most `fence` after the last feed.
    """
    return fence > 0 and fence + renew_interval + margin <= lease_ttl
