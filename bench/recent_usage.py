"""What the recent-usage record costs: its size in etcd for a host running N VMs with every
point filled, how long one takes to fold, encode and decode, and the write rate a cluster
makes. Pure (no etcd, no QEMU): the figures are varied at random as real ones are.

    .venv/bin/python bench/recent_usage.py [--vms 50] [--hosts 64] [--every 30]

Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import time

from corral.cluster.models import RECENT_POINTS, RECENT_STEP, RecentUsage
from corral.cluster.records import dump, load
from corral.usage.recent import MIB, HostSample, RecentWindow, VmSample

SAMPLE_SECONDS = 10


def filled(vms: int, rng: random.Random) -> RecentWindow:
    """A window whose every point holds six samples of each of `vms` VMs."""
    w = RecentWindow()
    t0 = 1_700_000_040.0
    for i in range(RECENT_POINTS * RECENT_STEP // SAMPLE_SECONDS):
        host = HostSample(rng.random(), rng.randrange(10_000, 200_000) * MIB,
                          rng.uniform(0, 32))
        w.add(t0 + i * SAMPLE_SECONDS + 5, host, {
            100 + v: VmSample(rng.uniform(0, 4), rng.randrange(64, 16_384) * MIB)
            for v in range(vms)})
    return w


def timed(n: int, fn: object) -> float:
    assert callable(fn)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between writes")
    args = parser.parse_args()
    rng = random.Random(1)
    w = filled(args.vms, rng)
    rec = w.record()
    assert rec is not None
    raw = dump(rec)
    per_vm = (len(raw) - len(dump(filled(0, rng).record() or rec))) / max(args.vms, 1)
    fold = timed(50, lambda: w.add(rec.last_at + 1, HostSample(0.5, MIB, 1.0), {
        100 + v: VmSample(1.0, MIB) for v in range(args.vms)}))
    encode = timed(50, lambda: dump(w.record()))  # type: ignore[arg-type]
    decode = timed(50, lambda: load(RecentUsage, raw))
    writes = args.hosts / args.every
    print(f"record for {args.vms} VMs, {RECENT_POINTS} points: {len(raw)} bytes "
          f"({per_vm:.0f} per VM)")
    print(f"fold one sample: {fold * 1e3:.2f} ms; build + encode: {encode * 1e3:.2f} ms; "
          f"decode: {decode * 1e3:.2f} ms")
    print(f"{args.hosts} hosts writing every {args.every:g} s: {writes:.2f} writes/s, "
          f"{writes * len(raw) / 1024:.0f} KiB/s, {writes * len(raw) * 3600 / MIB:.0f} MiB "
          "of etcd history per hour (compacted after 1 h)")
    print(f"every agent's view decodes {writes:.2f} records/s: "
          f"{writes * decode * 100:.2f} % of a core")


if __name__ == "__main__":
    main()
