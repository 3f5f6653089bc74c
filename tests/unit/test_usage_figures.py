"""One usage sample from two readings, and the parsing of what the kernel and QMP say, over
plain data."""

from __future__ import annotations

from corral.agent.history import next_sample_at
from corral.usage import figures as f

MIB = 1024 * 1024


def host(at: float, busy: float, total: float, disk: tuple[int, int] | None = (0, 0),
         net: tuple[int, int] | None = (0, 0), stall: dict[str, float] | None = None
         ) -> f.HostReading:
    return f.HostReading(at=at, cpu_busy=busy, cpu_total=total, memory_used=3 * MIB,
                         memory_total=8 * MIB, disk_read=disk[0] if disk else None,
                         disk_written=disk[1] if disk else None,
                         net_rx=net[0] if net else None, net_tx=net[1] if net else None,
                         stall=stall or {})


def test_the_first_host_reading_gives_memory_only() -> None:
    out = f.host_figures(None, host(100.0, 50.0, 200.0))
    assert out[f.MEMORY_USED] == 3 * MIB and out[f.MEMORY_TOTAL] == 8 * MIB
    assert {k for k, v in out.items() if v is not None} == {f.MEMORY_USED, f.MEMORY_TOTAL}
    assert set(out) == set(f.HOST_METRICS)


def test_host_rates_over_the_interval() -> None:
    before = host(100.0, 50.0, 200.0, (1000, 2000), (0, 10), {"cpu": 0.0, "io": 1e6})
    after = host(110.0, 65.0, 240.0, (11000, 2000), (5000, 10010),
                 {"cpu": 2.5e6, "io": 1e6, "memory": 7.0})
    out = f.host_figures(before, after)
    assert out[f.CPU] == 15 / 40
    assert out[f.DISK_READ] == 1000.0 and out[f.DISK_WRITE] == 0.0
    assert out[f.NET_RX] == 500.0 and out[f.NET_TX] == 1000.0
    # 2.5 s of stall in 10 s; no earlier memory reading; io never stalled.
    assert out[f.PSI_CPU] == 0.25 and out[f.PSI_MEMORY] is None and out[f.PSI_IO] == 0.0


def test_a_counter_that_went_back_gives_no_rate() -> None:
    out = f.host_figures(host(0.0, 10.0, 20.0, (500, 500), None),
                         host(10.0, 12.0, 40.0, (100, 600), (1, 1)))
    assert out[f.DISK_READ] is None and out[f.DISK_WRITE] == 10.0
    assert out[f.NET_RX] is None and out[f.CPU] == 0.1


def vm(at: float, pid: int, cpu: float, disk: tuple[int, int] | None = (0, 0)) -> f.VmReading:
    return f.VmReading(at=at, pid=pid, cpu_seconds=cpu, resident_bytes=50 * MIB,
                       disk_read=disk[0] if disk else None,
                       disk_written=disk[1] if disk else None)


def test_vm_cpu_is_a_share_of_its_cores_and_memory_total_its_configuration() -> None:
    out = f.vm_figures(vm(0.0, 7, 1.0, (0, 0)), vm(10.0, 7, 6.0, (4096, 8192)), 2, 128 * MIB)
    assert out[f.CPU] == 0.25
    assert out[f.MEMORY_USED] == 50 * MIB and out[f.MEMORY_TOTAL] == 128 * MIB
    assert out[f.DISK_READ] == 409.6 and out[f.DISK_WRITE] == 819.2
    assert out[f.NET_RX] is None and out[f.NET_TX] is None  # no network device to count
    assert set(out) == set(f.VM_METRICS)


def test_a_new_qemu_process_starts_its_rates_anew() -> None:
    out = f.vm_figures(vm(0.0, 7, 100.0), vm(10.0, 8, 1.0), 1, None)
    assert out[f.CPU] is None and out[f.DISK_READ] is None
    assert out[f.MEMORY_USED] == 50 * MIB and out[f.MEMORY_TOTAL] is None


def test_without_disk_figures_or_cores_those_stay_gaps() -> None:
    out = f.vm_figures(vm(0.0, 7, 1.0, None), vm(10.0, 7, 2.0, (1, 1)), None, None)
    assert out[f.CPU] is None and out[f.DISK_READ] is None


def test_cpu_busy_and_total_leave_guest_time_and_iowait_out() -> None:
    busy, total = f.cpu_busy_total({"user": 10.0, "nice": 1.0, "system": 4.0, "idle": 80.0,
                                    "iowait": 3.0, "irq": 0.5, "softirq": 0.5, "steal": 1.0,
                                    "guest": 6.0, "guest_nice": 0.0})
    assert total == 100.0 and busy == 17.0


DISKSTATS = """\
   7       0 loop0 10 0 80 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 254       0 vda 60490 11383 4929802 14317 106829 105322 10309440 49195 0 18324 67716 0 0 0 0
 254       1 vda1 60000 11000 4900000 14000 106000 105000 10300000 49000 0 18000 67000 0 0 0 0
 253       0 dm-0 5 0 40 0 1 0 8 0 0 0 0
"""


def test_disk_bytes_count_the_physical_disks_in_sectors_of_512() -> None:
    assert f.disk_bytes(DISKSTATS, {"vda"}) == (4929802 * 512, 10309440 * 512)
    assert f.disk_bytes(DISKSTATS, set()) == (0, 0)


NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0: 52000     40    0    0    0     0          0         0     7000      30    0    0    0     0       0          0
vmbr0:  51000     40    0    0    0     0          0         0     6900      30    0    0    0     0       0          0
"""  # noqa: E501


def test_network_counters_and_which_interfaces_count() -> None:
    counters = f.net_bytes(NET_DEV)
    assert counters == {"lo": (1000, 1000), "eth0": (52000, 7000), "vmbr0": (51000, 6900)}
    assert f.counted_interfaces(counters, {"eth0"}) == {"eth0"}  # not the bridge over it
    assert f.counted_interfaces(counters, set()) == {"eth0", "vmbr0"}  # a lab's veths


def test_pressure_total_of_some() -> None:
    text = ("some avg10=5.10 avg60=9.52 avg300=6.05 total=182019773\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert f.stall_total(text) == 182019773.0
    assert f.stall_total("full avg10=0.00 total=3\n") is None
    assert f.stall_total("") is None


def test_blockstats_add_up_the_guests_disks() -> None:
    reply = [{"device": "", "qdev": "virtio-disk0", "stats": {"rd_bytes": 10, "wr_bytes": 20}},
             {"device": "", "qdev": "virtio-disk1", "stats": {"rd_bytes": 1, "wr_bytes": 2}}]
    assert f.blockstats_bytes(reply) == (11, 22)
    assert f.blockstats_bytes([]) == (0, 0)  # no disks: no disk I/O
    assert f.blockstats_bytes({"not": "a list"}) is None
    assert f.blockstats_bytes([{"stats": {"rd_bytes": "x", "wr_bytes": 1}}]) is None


def test_samples_are_taken_in_the_middle_of_each_slot() -> None:
    assert next_sample_at(1000.0, 10.0) == 1005.0
    assert next_sample_at(1004.9, 10.0) == 1005.0
    assert next_sample_at(1005.0, 10.0) == 1015.0
    assert next_sample_at(1009.0, 10.0) == 1015.0
