"""Ports for listeners started a moment later: outside the kernel's ephemeral range."""

from __future__ import annotations

import socket
from pathlib import Path

from corral.host.ports import candidate_ports, ephemeral_range, free_port


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
