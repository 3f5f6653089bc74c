"""Samples consolidated like an RRD: for each range a ring of fixed-size slots, each holding the
average and the maximum of the samples that fell into it. Pure (no I/O): the agent feeds it
and stores its bytes.

A slot is numbered by `floor(t / step)` in Unix time, so slots of every host start at the
same instants (a day slot is a UTC day). A sample goes into the current slot of each archive;
a slot no sample reached is a gap (`None` in a window, NaN inside). A sample older than an
archive's newest slot (the clock stepped back) is left out of that archive.
"""

from __future__ import annotations

import json
import math
import struct
import sys
import zlib
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Spec:
    step: int  # seconds per slot
    rows: int  # slots kept


# What Proxmox offers: an hour at 10 s, a day at 1 min, a week at 30 min, a month (30 days)
# at 2 h and a year at 1 day. 2861 slots in all.
RANGES: dict[str, Spec] = {
    "hour": Spec(10, 360),
    "day": Spec(60, 1440),
    "week": Spec(1800, 336),
    "month": Spec(7200, 360),
    "year": Spec(86400, 365),
}

Values = Mapping[str, float | None]
Series = list[float | None]


class Archive:
    """One range's ring: `last` is the number of its newest slot, None before any sample."""

    def __init__(self, spec: Spec, metrics: Sequence[str]) -> None:
        self.spec = spec
        self.last: int | None = None
        self.avg = {m: array("d", [math.nan]) * spec.rows for m in metrics}
        self.max = {m: array("d", [math.nan]) * spec.rows for m in metrics}
        self.count = dict.fromkeys(metrics, 0)  # samples in the newest slot, per metric

    def add(self, slot: int, values: Values) -> bool:
        """Fold one sample into `slot`; False when the slot is older than the newest."""
        rows = self.spec.rows
        if self.last is None or slot - self.last >= rows:
            self._clear(range(rows))
        elif slot < self.last:
            return False
        elif slot > self.last:
            self._clear(s % rows for s in range(self.last + 1, slot + 1))
        self.last = slot
        at = slot % rows
        for metric, value in values.items():
            if value is None or metric not in self.avg or not math.isfinite(value):
                continue
            avg, top = self.avg[metric], self.max[metric]
            n = self.count[metric] + 1
            if n == 1:
                avg[at] = top[at] = value
            else:
                avg[at] += (value - avg[at]) / n  # the running mean: no sum kept per slot
                top[at] = max(top[at], value)
            self.count[metric] = n
        return True

    def _clear(self, indexes: Any) -> None:
        at = list(indexes)
        for ring in (*self.avg.values(), *self.max.values()):
            for i in at:
                ring[i] = math.nan
        self.count = dict.fromkeys(self.count, 0)

    def series(self, ring: array[float], first: int, current: int, decimals: int
               ) -> Series:
        """The slots first..current of ring, oldest first; None where there is no figure."""
        rows = self.spec.rows
        if self.last is None:
            return [None] * (current - first + 1)
        lo, hi = max(first, self.last - rows + 1), min(current, self.last)
        if lo > hi:
            return [None] * (current - first + 1)
        kept = [ring[s % rows] for s in range(lo, hi + 1)]
        return ([None] * (lo - first)
                + [None if math.isnan(v) else round(v, decimals) for v in kept]
                + [None] * (current - hi))


@dataclass(frozen=True)
class Window:
    """One range of one subject as an answer shows it."""

    range: str
    step: int
    start: int  # Unix seconds at which the first slot begins
    metrics: dict[str, tuple[Series, Series]]  # name -> (average, maximum), oldest first


class Rrd:
    """The five archives of one host or VM, over a fixed list of metrics."""

    def __init__(self, metrics: Sequence[str]) -> None:
        self.metrics = tuple(metrics)
        self.archives = {name: Archive(spec, self.metrics) for name, spec in RANGES.items()}

    def add(self, t: float, values: Values) -> None:
        for archive in self.archives.values():
            archive.add(math.floor(t / archive.spec.step), values)

    def window(self, range_name: str, now: float, decimals: Mapping[str, int]) -> Window:
        """Every slot of the range, ending with the one `now` falls in. `decimals`: how far
        each metric's figures are rounded (a missing metric: whole numbers)."""
        archive = self.archives[range_name]
        step, rows = archive.spec.step, archive.spec.rows
        current = math.floor(now / step)
        first = current - rows + 1
        return Window(range_name, step, first * step, {
            m: (archive.series(archive.avg[m], first, current, decimals.get(m, 0)),
                archive.series(archive.max[m], first, current, decimals.get(m, 0)))
            for m in self.metrics
        })


def answer(window: Window, node: str, vmid: int | None) -> dict[str, Any]:
    """The JSON body of GET .../usage (docs/usage-history.md)."""
    return {
        "range": window.range, "step_seconds": window.step, "start": window.start,
        "node": node, "vmid": vmid,
        "metrics": {m: {"avg": avg, "max": top} for m, (avg, top) in window.metrics.items()},
    }


# --- bytes --------------------------------------------------------------------------------

MAGIC = b"corral-rrd 1\n"
_LENGTH = struct.Struct("<I")


def _little(ring: array[float]) -> bytes:
    if sys.byteorder == "little":
        return ring.tobytes()
    swapped = array("d", ring)
    swapped.byteswap()
    return swapped.tobytes()


def snapshot(rrd: Rrd) -> tuple[bytes, bytes]:
    """The header and the uncompressed rings: a cheap copy, taken where the archives are
    updated; `pack` (the slow part) may then run elsewhere."""
    header = {
        "metrics": list(rrd.metrics),
        "archives": {name: {"step": a.spec.step, "rows": a.spec.rows, "last": a.last,
                            "count": a.count} for name, a in rrd.archives.items()},
    }
    rings = b"".join(_little(ring) for a in rrd.archives.values() for m in rrd.metrics
                     for ring in (a.avg[m], a.max[m]))
    return json.dumps(header, separators=(",", ":")).encode(), rings


def pack(header: bytes, rings: bytes) -> bytes:
    # Gaps (NaN runs) compress to almost nothing: a new VM's file is small.
    return MAGIC + _LENGTH.pack(len(header)) + header + zlib.compress(rings, 1)


def encode(rrd: Rrd) -> bytes:
    return pack(*snapshot(rrd))


def decode(data: bytes, metrics: Sequence[str]) -> Rrd:
    """The archives stored in `data`, over `metrics`: a metric or range the data lacks (or
    keeps at another step or size) starts empty. ValueError when data is not such a file."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _LENGTH.size:
        raise ValueError("not a usage archive")
    at = len(MAGIC)
    (length,) = _LENGTH.unpack_from(data, at)
    at += _LENGTH.size
    try:
        header = json.loads(data[at:at + length])
        rings = zlib.decompress(data[at + length:])
        stored_metrics = [str(m) for m in header["metrics"]]
        stored = header["archives"]
    except (ValueError, KeyError, TypeError, zlib.error) as e:
        raise ValueError(f"usage archive does not decode: {e}") from None
    rrd = Rrd(metrics)
    offset = 0
    for name, info in stored.items():
        try:
            spec = Spec(int(info["step"]), int(info["rows"]))
            last = info["last"]
            count = info["count"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"usage archive {name} does not decode: {e}") from None
        size = spec.rows * 8
        archive = rrd.archives.get(name)
        usable = archive is not None and archive.spec == spec
        for metric in stored_metrics:
            if offset + 2 * size > len(rings):
                raise ValueError("usage archive is truncated")
            if usable and archive is not None and metric in archive.avg:
                for target, part in ((archive.avg, 0), (archive.max, size)):
                    ring = array("d")
                    ring.frombytes(rings[offset + part:offset + part + size])
                    if sys.byteorder != "little":
                        ring.byteswap()
                    target[metric] = ring
                archive.count[metric] = int(count.get(metric, 0))
            offset += 2 * size
        if usable and archive is not None:
            archive.last = None if last is None else int(last)
    if offset != len(rings):
        raise ValueError("usage archive has trailing data")
    return rrd
