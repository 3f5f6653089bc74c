"""Reading QEMU's migration and block-job reports into Stats: pure functions."""

from __future__ import annotations

from typing import Any

from corral.migration.record import Stats

MIB = 1024 * 1024


def ram_figures(reply: dict[str, Any]) -> tuple[int, int, int]:
    """(total, transferred, remaining) bytes of RAM from a query-migrate reply."""
    ram = reply.get("ram") or {}
    return int(ram.get("total", 0)), int(ram.get("transferred", 0)), int(ram.get("remaining", 0))


def disk_figures(jobs: list[dict[str, Any]], prefix: str) -> tuple[int, int]:
    """(total, transferred) bytes of the block jobs whose id starts with prefix."""
    mine = [j for j in jobs if str(j.get("device", "")).startswith(prefix)]
    return sum(int(j.get("len", 0)) for j in mine), sum(int(j.get("offset", 0)) for j in mine)


def stats(migrate: dict[str, Any], jobs: list[dict[str, Any]], prefix: str, elapsed: float,
          previous: Stats | None = None) -> Stats:
    """Stats from the latest reports (the rate is carried over: see with_rate).

    Disk figures never go down: a mirror job that finished is no longer listed, so its last
    figures are kept from the previous sample.
    """
    ram_total, ram_done, ram_left = ram_figures(migrate)
    disk_total, disk_done = disk_figures(jobs, prefix)
    if previous is not None:
        disk_total = max(disk_total, previous.disk_total)
        disk_done = max(disk_done, previous.disk_transferred)
        ram_total = ram_total or previous.ram_total
        ram_done = max(ram_done, previous.ram_transferred)
    return Stats(ram_total=ram_total, ram_transferred=ram_done, ram_remaining=ram_left,
                 disk_total=disk_total, disk_transferred=disk_done, elapsed=elapsed,
                 rate=previous.rate if previous is not None else 0.0)


def with_rate(new: Stats, since: Stats) -> Stats:
    """new with its rate measured since an earlier sample (a window of a second or so: the
    mirror and RAM transfer move in bursts)."""
    if new.elapsed <= since.elapsed:
        return new
    moved = max(new.transferred - since.transferred, 0)
    return new.model_copy(update={"rate": moved / (new.elapsed - since.elapsed)})


def fraction(s: Stats) -> float:
    """How far along the transfer is, 0..1, for the task's progress bar.

    RAM keeps being re-sent while the guest dirties it, so its part counts what is left.
    """
    ram = (1.0 - s.ram_remaining / s.ram_total) if s.ram_total else 0.0
    disk = s.disk_transferred / s.disk_total if s.disk_total else 1.0
    if not s.disk_total:
        return max(0.0, min(ram, 1.0))
    share = s.disk_total / (s.disk_total + max(s.ram_total, 1))
    return max(0.0, min(share * disk + (1 - share) * ram, 1.0))


def describe(s: Stats) -> str:
    parts = [f"RAM {s.ram_transferred / MIB:.1f} MiB sent, {s.ram_remaining / MIB:.1f} "
             f"of {s.ram_total / MIB:.1f} MiB left"]
    if s.disk_total:
        parts.append(f"disk {s.disk_transferred / MIB:.1f}/{s.disk_total / MIB:.1f} MiB")
    parts.append(f"{s.rate / MIB:.1f} MiB/s")
    return ", ".join(parts)
