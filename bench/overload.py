"""One API process above its capacity, with nothing else busy on the machine: what a refusal
costs, and whether the requests it admits keep their latency.

    .venv/bin/python bench/overload.py [--rates 500,2000] [--overload-rates 1500,3000]
                                       [--duration 10]

One etcd member on loopback with 30 VMs, and the API (`corral api serve`); open-loop GETs
from aiohttp on the same machine. Latency is from each request's scheduled send time (no
coordinated omission), and also from its actual send, leaving the generator's own lag out.
The API's CPU per request is its user + system time over the requests answered.

1. Refusals alone: an API with `--max-in-flight 1` whose one place is held by a VM create
   whose body never finishes arriving, so every read is refused with 503; next to it at the
   same rates, the health check (never refused, the cheapest request there is).
2. Admitted under overload: an API with the default bound, reading one VM at a time, at a
   rate it serves with room to spare (--comfortable-rate) and at rates beyond what one
   process serves.

Prints figures, asserts nothing. `bench/control_plane.py` measures the same beside
everything else a cluster does on the same two cores (etcd's three members, the manager,
simulated hosts, writes): there a refusal or an admitted request also waits for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import psutil

from corral.cluster.models import Placement, RunState, VMConfig
from corral.cluster.store import Store
from corral.lab.etcd import EtcdMember, free_port, wait_healthy

TOKEN = "bench-overload"
VMID = 101
VMS = 30
CONNECTIONS = 32
TIMEOUT = 5.0
HEALTH = "/api/v1/health"
REFUSED = f"/api/v1/vms/{VMID}"


@dataclass
class Window:
    """One route at one rate: latencies (ms) by status, from the schedule and from the send."""

    scheduled: dict[int, list[float]] = field(default_factory=dict)
    sent: list[float] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_ms_per_request: float = 0.0


async def seed(endpoint: str) -> None:
    async with Store([endpoint]) as store:
        await store.add_token(TOKEN)
        for vmid in range(VMID, VMID + VMS):
            cfg = VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=64, cores=1)
            await store.create_vm(cfg, Placement(node="sim-host-000", state=RunState.STOPPED))


def hold_the_place(port: int) -> socket.socket:
    """A POST whose body never finishes: admitted, it waits for the rest and keeps its place."""
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(b"POST /api/v1/vms HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
    return conn


async def open_loop(urls: list[str], rate: float, duration: float) -> Window:
    window = Window()
    pick = random.Random(7)
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as client:
        queue: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()

        async def worker() -> None:
            while (item := await queue.get()) is not None:
                scheduled, url = item
                sent = time.monotonic()
                try:
                    async with client.get(url) as reply:
                        await reply.read()
                        status = reply.status
                except (TimeoutError, aiohttp.ClientError):
                    window.errors += 1
                    continue
                done = time.monotonic()
                window.scheduled.setdefault(status, []).append((done - scheduled) * 1000)
                window.sent.append((done - sent) * 1000)

        workers = [asyncio.create_task(worker()) for _ in range(CONNECTIONS)]
        start = time.monotonic() + 0.2
        for i in range(int(rate * duration)):
            scheduled = start + i / rate
            if (delay := scheduled - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            window.lag.append((time.monotonic() - scheduled) * 1000)
            queue.put_nowait((scheduled, pick.choice(urls)))
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.wait(workers, timeout=TIMEOUT + 5)
    return window


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def line(label: str, rate: float, w: Window) -> str:
    by_status = ", ".join(f"{status}: {len(v)}" for status, v in sorted(w.scheduled.items()))
    every = [x for v in w.scheduled.values() for x in v]
    return (f"  {label:<28} {rate:>6.0f}/s  {by_status:<12} p50/p99/max "
            f"{pct(every, 0.5):5.1f} / {pct(every, 0.99):5.1f} / {max(every, default=0):6.1f} ms"
            f"   from send p50/p99 {pct(w.sent, 0.5):4.1f} / {pct(w.sent, 0.99):4.1f} ms"
            f"   lag p99 {pct(w.lag, 0.99):4.1f} ms   API CPU {w.cpu_ms_per_request:.3f} ms/req"
            + (f"   errors {w.errors}" if w.errors else ""))


def overload_line(rate: float, duration: float, w: Window) -> str:
    served, refused = w.scheduled.get(200, []), w.scheduled.get(503, [])
    other = sum(len(v) for s, v in w.scheduled.items() if s not in (200, 503)) + w.errors
    return (f"  {rate:>6.0f}/s  served {len(served) / duration:5.0f}/s, p50/p99 "
            f"{pct(served, 0.5):5.1f} / {pct(served, 0.99):5.1f} ms   refused {len(refused):5d}"
            + (f", p50/p99 {pct(refused, 0.5):4.1f} / {pct(refused, 0.99):4.1f} ms"
               if refused else "")
            + f"   lag p99 {pct(w.lag, 0.99):4.1f} ms"
            + (f"   other answers or errors {other}" if other else ""))


def measure(api: psutil.Process, urls: list[str], rate: float, duration: float) -> Window:
    cpu = sum(api.cpu_times()[:2])
    window = asyncio.run(open_loop(urls, rate, duration))
    answered = sum(len(v) for v in window.scheduled.values())
    window.cpu_ms_per_request = (sum(api.cpu_times()[:2]) - cpu) * 1000 / max(answered, 1)
    return window


def start_api(endpoint: str, procs: list[subprocess.Popen[bytes]], *options: str
              ) -> tuple[str, psutil.Process]:
    port = free_port()
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "corral.cli.main", "api", "serve", "--etcd", endpoint,
         "--port", str(port), *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + HEALTH, timeout=2).status_code == 200:
                return base, psutil.Process(procs[-1].pid)
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            sys.exit("the API did not answer within 30 s")
        time.sleep(0.2)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Each process's session, last started first: TERM, then KILL after 10 s."""
    for proc in reversed(procs):
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def refusals_alone(endpoint: str, procs: list[subprocess.Popen[bytes]], rates: list[float],
                   duration: float) -> None:
    base, api = start_api(endpoint, procs, "--max-in-flight", "1")
    held = hold_the_place(int(base.rsplit(":", 1)[1]))
    time.sleep(0.2)
    reply = httpx.get(base + REFUSED, headers={"Authorization": f"Bearer {TOKEN}"})
    if reply.status_code != 503:
        sys.exit(f"the place is not held: GET {REFUSED} answered {reply.status_code}")
    print("-- refusals alone: --max-in-flight 1, its place held; the health check beside")
    for rate in rates:
        for label, path in (("GET /health (baseline)", HEALTH),
                            ("GET /vms/{id} refused", REFUSED)):
            print(line(label, rate, measure(api, [base + path], rate, duration)), flush=True)
    held.close()


def admitted_under_overload(endpoint: str, procs: list[subprocess.Popen[bytes]],
                            comfortable: float, rates: list[float], duration: float) -> None:
    base, api = start_api(endpoint, procs)
    urls = [f"{base}/api/v1/vms/{vmid}" for vmid in range(VMID, VMID + VMS)]
    measure(api, urls, comfortable, 2.0)  # warm up, and let the bound learn its baseline
    print(f"-- admitted under overload: the default bound, GET /vms/{{id}} of {VMS} VMs; "
          f"{comfortable:.0f}/s is the baseline")
    for rate in (comfortable, *rates):
        print(overload_line(rate, duration, measure(api, urls, rate, duration)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="500,2000",
                        help="req/s of the refusals alone, comma separated")
    parser.add_argument("--comfortable-rate", type=float, default=200.0,
                        help="req/s one process serves with room to spare")
    parser.add_argument("--overload-rates", default="1500,3000",
                        help="req/s beyond what one process serves, comma separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    overload = [float(r) for r in args.overload_rates.split(",")]
    if (not all(0 < r <= 5000 for r in (*rates, *overload, args.comfortable_rate))
            or not 0 < args.duration <= 120):
        parser.error("rates: each 0 to 5000 per second; --duration: 0 to 120 s")

    root = Path(tempfile.mkdtemp(prefix="corral-bench-overload-"))
    member = EtcdMember("o0", root / "o0", free_port(), free_port())
    procs = [subprocess.Popen(member.command([member]), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        wait_healthy([member.client_url])
        asyncio.run(seed(member.client_url))
        print(f"one API process above its capacity, {time.strftime('%Y-%m-%d %H:%M:%S')}, "
              f"{os.cpu_count()} CPUs, {args.duration:.0f} s per rate; one etcd member, "
              "nothing else running; open loop from aiohttp, latency from the scheduled send")
        refusals_alone(member.client_url, procs, rates, args.duration)
        admitted_under_overload(member.client_url, procs, args.comfortable_rate, overload,
                                args.duration)
    finally:
        stop_all(procs)
        subprocess.run(["rm", "-rf", str(root)], check=False)


if __name__ == "__main__":
    main()
