"""Ports on a host's migration address."""

from __future__ import annotations

import time

from corral.host.ports import PortRange, free_port_in, kernel_port

# A port handed to a receive is not handed out again for this long: its QEMU or qemu-nbd
# binds it within seconds, and until then a bind test alone would find it free.
RESERVED_SECONDS = 30.0
_handed_out: dict[int, float] = {}  # port -> when, in this agent


class NoFreePort(RuntimeError):
    pass


def free_port(host: str, ports: PortRange | None = None) -> int:
    """A TCP port nothing listens on right now at host: one of `ports` (the host's migration
    range) or, without one, one the kernel picks from its ephemeral range.

    The listener binds it a moment later; on a busy host another process could take it in
    between, and the migration then fails cleanly and can be retried. NoFreePort when every
    port of the range is taken.
    """
    if ports is None:
        return kernel_port(host)
    now = time.monotonic()
    for port, when in list(_handed_out.items()):
        if now - when > RESERVED_SECONDS:
            del _handed_out[port]
    found = free_port_in(host, ports, skip=_handed_out)
    if found is None:
        raise NoFreePort(f"no free port in the migration range {ports} on {host}: every one is "
                         "in use (migration_ports in the host's config)")
    _handed_out[found] = now
    return found


def nbd_uri(host: str, port: int, export: str) -> str:
    return f"nbd://{host}:{port}/{export}"
