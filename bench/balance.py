"""Load balancers compared on the same workloads and the same simulated clock: no-op, ProxLB,
Proxmox VE 9.2's dynamic balancer, a DRS/hbal-style greedy, and Corral's planner.

    .venv/bin/python bench/balance.py                      # 20 seeds x 3x30, 8x160 + trace
    .venv/bin/python bench/balance.py --sizes 16x480 --trace '' --timing ''  # ~6 min
    .venv/bin/python bench/balance.py --quick              # 3 seeds, small sizes
    .venv/bin/python bench/balance.py --seeds 5 --sizes 3x30,8x160
    .venv/bin/python bench/balance.py --trace bench/traces/small.json
    .venv/bin/python bench/balance.py --write-trace out.json --sizes 4x24 --span-h 4
    .venv/bin/python bench/balance.py --set threshold=0.1 --set min_gain=0.02

Per contender and size (means over seeds): time-averaged and p95 imbalance (mean of the CVs
of host CPU and memory use), host-hours above 90 % CPU, unmet CPU demand (core-hours),
migrations, GiB moved, ping-pong moves (back to a host left < 2 h before), capacity and rule
violations, and decision time per round. The workload format and the contenders are
described in src/corral/balancer/bench/ and docs/balancer.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from corral.balancer.bench.contenders import all_contenders
from corral.balancer.bench.sim import Result, run
from corral.balancer.bench.workload import Workload, from_trace, generate, to_trace

DEFAULT_SIZES = "3x30,8x160"
TIMING_SIZE = "64x3000"
TIMING_SPAN_S = 3600.0
TRACE = Path(__file__).parent / "traces" / "small.json"
COMPARABLE = 1.10  # a contender within 10 % of Corral's p95 imbalance reached "comparable"


def _size(text: str) -> tuple[int, int]:
    h, _, v = text.partition("x")
    return int(h), int(v)


def _run_one(args: tuple[Workload, float, dict[str, Any], list[str] | None]
             ) -> list[Result]:
    w, span_s, overrides, only = args
    out = []
    for c in all_contenders(span_s, overrides):
        if only is None or c.name in only:
            out.append(run(w, c))
    return out


def _generated(job: tuple[int, int, int, float, float, dict[str, Any], list[str] | None]
               ) -> list[Result]:
    seed, hosts, vms, span_s, step_s, overrides, only = job
    return _run_one((generate(seed, hosts, vms, span_s, step_s), span_s, overrides, only))


def _table(title: str, runs: list[list[Result]]) -> dict[str, dict[str, float]]:
    """Print the means over runs per contender; returns them."""
    names = [r.contender for r in runs[0]]
    rows: dict[str, dict[str, float]] = {}
    for k, name in enumerate(names):
        rs = [rr[k] for rr in runs]
        times = [t for r in rs for t in r.decisions]
        rows[name] = {
            "mean": statistics.fmean(r.mean_imbalance for r in rs),
            "p95": statistics.fmean(r.p95_imbalance for r in rs),
            "hot_h": statistics.fmean(r.hot_host_s for r in rs) / 3600,
            "unmet": statistics.fmean(r.unmet_core_s for r in rs) / 3600,
            "moves": statistics.fmean(r.migrations for r in rs),
            "gib": statistics.fmean(r.gib_moved for r in rs),
            "pingpong": statistics.fmean(r.pingpong for r in rs),
            "viol": sum(r.capacity_violations + r.rule_violations for r in rs),
            "ms": 1000 * statistics.fmean(times) if times else 0.0,
            "ms_max": 1000 * max(times) if times else 0.0,
        }
    print(f"\n== {title} ({len(runs)} run{'s' if len(runs) != 1 else ''}; means per run)")
    print(f"{'contender':<12}{'imb mean':>9}{'imb p95':>9}{'hot h':>8}{'unmet':>8}"
          f"{'moves':>8}{'GiB':>9}{'pingpg':>8}{'viol':>6}{'ms/rnd':>8}{'ms max':>8}")
    for name, r in rows.items():
        print(f"{name:<12}{r['mean']:>9.3f}{r['p95']:>9.3f}{r['hot_h']:>8.2f}"
              f"{r['unmet']:>8.1f}{r['moves']:>8.1f}{r['gib']:>9.1f}{r['pingpong']:>8.1f}"
              f"{r['viol']:>6.0f}{r['ms']:>8.1f}{r['ms_max']:>8.1f}")
    if "corral" in rows:
        _verdict(rows, runs, names)
    return rows


def _verdict(rows: dict[str, dict[str, float]], runs: list[list[Result]],
             names: list[str]) -> None:
    me = rows["corral"]
    k = names.index("corral")
    lines = []
    ok = True
    for j, name in enumerate(names):
        if name == "corral":
            continue
        r = rows[name]
        p95_wins = sum(rr[k].p95_imbalance <= rr[j].p95_imbalance + 1e-9 for rr in runs)
        hot_wins = sum(rr[k].hot_host_s <= rr[j].hot_host_s + 1e-9 for rr in runs)
        p95_ok = me["p95"] <= r["p95"] + 1e-9
        hot_ok = me["hot_h"] <= r["hot_h"] + 1e-9
        ok &= p95_ok and hot_ok
        lines.append(f"  vs {name:<11} p95 {'<=' if p95_ok else '> '} "
                     f"(per run {p95_wins}/{len(runs)}), hot {'<=' if hot_ok else '> '} "
                     f"(per run {hot_wins}/{len(runs)})")
    comparable = [n for n in names if n not in ("corral", "noop")
                  and rows[n]["p95"] <= me["p95"] * COMPARABLE]
    frugal = min((rows[n]["gib"] for n in comparable), default=None)
    gib_ok = frugal is None or me["gib"] <= frugal + 1e-9
    ok &= gib_ok and me["viol"] == 0
    print("\n".join(lines))
    print(f"  GiB: corral {me['gib']:.1f}; contenders with p95 within 10 % of corral's: "
          f"{', '.join(comparable) or 'none'}"
          + (f" (least GiB {frugal:.1f})" if frugal is not None else "")
          + f"; violations {me['viol']:.0f}")
    print(f"  => corral {'WINS' if ok else 'does NOT win'} here")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--sizes", default=None, help=f"HOSTSxVMS,... (default {DEFAULT_SIZES})")
    ap.add_argument("--quick", action="store_true", help="3 seeds, sizes 3x30,8x160")
    ap.add_argument("--span-h", type=float, default=24.0, help="simulated hours per run")
    ap.add_argument("--step-s", type=float, default=60.0)
    ap.add_argument("--trace", action="append", default=None,
                    help=f"a trace file (repeatable; default: {TRACE.name} after the seeds)")
    ap.add_argument("--write-trace", default=None, help="write the first seed's workload")
    ap.add_argument("--timing", default=TIMING_SIZE,
                    help="size for one short run measuring decision time ('' to skip)")
    ap.add_argument("--only", default=None, help="contenders to run, comma-separated")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a BalanceConfig field for Corral")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)

    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    only = args.only.split(",") if args.only else None
    seeds = 3 if args.quick and args.seeds == 20 else args.seeds
    sizes = [_size(s) for s in (args.sizes or ("3x30,8x160" if args.quick
                                               else DEFAULT_SIZES)).split(",") if s]
    span_s = args.span_h * 3600

    if args.write_trace:
        h, v = sizes[0]
        w = generate(0, h, v, span_s, args.step_s)
        Path(args.write_trace).write_text(json.dumps(to_trace(w), separators=(",", ":")))
        print(f"wrote {args.write_trace}: {h} hosts, {v} VMs, {w.steps} steps")
        return 0

    started = time.monotonic()
    print(f"balancer bench: seeds {seeds}, span {args.span_h:g} h, step {args.step_s:g} s"
          + (f", corral overrides {overrides}" if overrides else ""))
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        for hosts, vms in sizes if seeds > 0 else []:
            jobs = [(seed, hosts, vms, span_s, args.step_s, overrides, only)
                    for seed in range(seeds)]
            runs = list(pool.map(_generated, jobs))
            _table(f"{hosts} hosts x {vms} VMs, {args.span_h:g} h", runs)
        for trace in [t for t in args.trace or [str(TRACE)] if t]:
            w = from_trace(json.loads(Path(trace).read_text()), Path(trace).stem)
            trace_span = w.steps * w.step_s
            _table(f"trace {trace}: {len(w.hosts)} hosts x {len(w.vms)} VMs, "
                   f"{trace_span / 3600:g} h", [_run_one((w, trace_span, overrides, only))])
        if args.timing:
            hosts, vms = _size(args.timing)
            w = generate(1, hosts, vms, TIMING_SPAN_S, args.step_s)
            timing_only = only or ["corral", "greedy", "pve", "proxlb"]
            _table(f"decision time at {hosts} hosts x {vms} VMs, "
                   f"{TIMING_SPAN_S / 3600:g} h, one seed",
                   [_run_one((w, TIMING_SPAN_S, overrides, timing_only))])
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
