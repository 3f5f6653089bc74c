"""`corral node|vm usage` sums a usage answer up per metric, over plain data."""

from __future__ import annotations

from corral.cli.usage import Summary, shown, summarise


def test_latest_average_and_maximum_skip_the_gaps() -> None:
    body = {"metrics": {
        "cpu": {"avg": [None, 0.2, None, 0.4, None], "max": [None, 0.5, None, 0.4, None]},
        "net_rx_bytes_per_s": {"avg": [None] * 5, "max": [None] * 5},
    }}
    cpu, net = summarise(body)
    assert cpu.metric == "cpu" and cpu.latest == 0.4 and cpu.maximum == 0.5 and cpu.slots == 2
    assert abs((cpu.average or 0) - 0.3) < 1e-12
    assert net == Summary("net_rx_bytes_per_s", None, None, None, 0)


def test_figures_are_shown_in_their_units() -> None:
    assert shown("cpu", 0.1234) == "12.3%" and shown("psi_io", 0.5) == "50.0%"
    assert shown("memory_used_bytes", 3 * 1024**3) == "3.0 GiB"
    assert shown("disk_read_bytes_per_s", 1536) == "1.5 KiB/s"
    assert shown("net_tx_bytes_per_s", 12) == "12 B/s"
    assert shown("cpu", None) == "-"
