"""Ports for listeners started a moment later: outside the kernel's ephemeral range, or within
a host's migration range."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from corral.host.ports import (
    PortRange,
    candidate_ports,
    ephemeral_range,
    free_port,
    free_port_in,
)
from corral.migration import net


def test_the_range_is_read_and_a_missing_file_falls_back_to_linux_default(tmp_path: Path
                                                                         ) -> None:
    f = tmp_path / "range"
    f.write_text("20000\t40000\n")
    assert ephemeral_range(f) == (20000, 40000)
    assert ephemeral_range(tmp_path / "missing") == (32768, 60999)


def test_candidates_lie_below_the_ephemeral_range_or_above_it_when_it_starts_low() -> None:
    assert candidate_ports((32768, 60999)) == range(10000, 32768)
    assert candidate_ports((1024, 50000)) == range(50001, 65536)


def test_free_port_is_bindable_and_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    for _ in range(20):
        port = free_port()
        assert not low <= port <= high
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_range_reads_low_dash_high_and_names_what_is_wrong() -> None:
    r = PortRange.parse(" 60000-60099 ")
    assert (r.low, r.high, str(r)) == (60000, 60099, "60000-60099")
    assert 60000 in r and 60099 in r and 60100 not in r and 59999 not in r
    for bad, why in [("60000", "LOW-HIGH"), ("a-b", "LOW-HIGH"), ("60001-60000", "LOW <= HIGH"),
                     ("80-90", "1024-65535"), ("60000-70000", "1024-65535")]:
        with pytest.raises(ValueError, match=why):
            PortRange.parse(bad)


def test_a_free_port_in_a_range_skips_ports_in_use_and_those_handed_out() -> None:
    low = free_port()
    ports = PortRange(low, low + 2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", low))  # in use
        picked = {free_port_in("127.0.0.1", ports, skip={low + 2}) for _ in range(20)}
        assert picked == {low + 1}
        assert free_port_in("127.0.0.1", ports, skip={low + 1, low + 2}) is None


def test_a_receive_never_gets_a_port_another_was_just_handed(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setattr(net, "_handed_out", {})
    low = free_port()
    ports = PortRange(low, low + 1)
    first, second = net.free_port("127.0.0.1", ports), net.free_port("127.0.0.1", ports)
    assert {first, second} == {low, low + 1}  # the first is not bound yet, and still skipped
    with pytest.raises(net.NoFreePort, match=f"no free port in the migration range {ports}"):
        net.free_port("127.0.0.1", ports)
    # After the reservation runs out, a port nothing listens on is free again.
    monkeypatch.setattr(net, "RESERVED_SECONDS", -1.0)
    assert net.free_port("127.0.0.1", ports) in ports
    # Without a range the kernel picks.
    assert net.free_port("127.0.0.1") > 0
