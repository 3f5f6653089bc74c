"""What a Prometheus scrape of a large cluster does to the API's other requests: one VM read
at a time at a steady rate, without and with /api/v1/metrics scraped beside them.

    .venv/bin/python bench/scrape.py [--vms 5000] [--hosts 64] [--rate 100] [--duration 20]
                                     [--every 2] [--rounds 2]

One etcd member on loopback holding the VMs (stopped, on hosts that hold no lease), and the
API (`corral api serve`). Open-loop GET /vms/{id} from aiohttp (`bench/overload.py`), latency
from each request's scheduled send; the scraper asks for the metrics every --every seconds
from a thread of its own. Windows without a scrape (the baseline) and with scrapes alternate,
--rounds times. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
from overload import TOKEN, Window, measure, pct, start_api, stop_all  # bench/, beside this script
from simulated_hosts import host_names

from corral.cluster.models import Placement, RunState, VMConfig
from corral.cluster.store import Store
from corral.lab.etcd import EtcdMember, free_port, wait_healthy

FIRST_VMID = 100
CREATE_CONCURRENCY = 32


async def seed(endpoint: str, vms: int, hosts: int) -> None:
    names = host_names(hosts)
    async with Store([endpoint]) as store:
        await store.add_token(TOKEN)
        pending = iter(range(FIRST_VMID, FIRST_VMID + vms))

        async def creator() -> None:
            for vmid in pending:
                cfg = VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=64, cores=1)
                await store.create_vm(cfg, Placement(node=names[vmid % hosts],
                                                     state=RunState.STOPPED))

        await asyncio.gather(*(creator() for _ in range(CREATE_CONCURRENCY)))


class Scraper:
    """GET /api/v1/metrics every `every` seconds until stopped; each scrape's time and size."""

    def __init__(self, base: str, every: float) -> None:
        self.base = base
        self.every = every
        self.times: list[float] = []  # ms
        self.sizes: list[int] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(headers=headers, timeout=30) as client:
            while not self._stop.wait(self.every):
                start = time.monotonic()
                reply = client.get(self.base + "/api/v1/metrics")
                if reply.status_code != 200:
                    self.failed += 1
                    continue
                self.times.append((time.monotonic() - start) * 1000)
                self.sizes.append(len(reply.content))


def row(label: str, w: Window) -> str:
    ok = w.scheduled.get(200, [])
    other = sum(len(v) for s, v in w.scheduled.items() if s != 200) + w.errors
    return (f"  {label:<30} {len(ok):>6}  p50/p99/max {pct(ok, 0.5):6.1f} / {pct(ok, 0.99):6.1f}"
            f" / {max(ok, default=0):6.1f} ms   API CPU {w.cpu_ms_per_request:.3f} ms/req"
            + (f"   not 200: {other}" if other else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=5000)
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="corral-bench-scrape-") as tmp:
        member = EtcdMember("s0", Path(tmp) / "s0", free_port(), free_port())
        try:
            procs.append(subprocess.Popen(member.command([member]), stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
            wait_healthy([member.client_url], timeout=30)
            started = time.monotonic()
            asyncio.run(seed(member.client_url, args.vms, args.hosts))
            print(f"scrapes beside reads, {time.strftime('%Y-%m-%d %H:%M:%S')}: {args.vms} VMs "
                  f"on {args.hosts} hosts (written in {time.monotonic() - started:.0f} s), "
                  f"GET /vms/{{id}} at {args.rate:.0f}/s for {args.duration:.0f} s per window, "
                  f"a scrape every {args.every:g} s in the scraped windows", flush=True)
            base, api = start_api(member.client_url, procs)
            urls = [f"{base}/api/v1/vms/{vmid}"
                    for vmid in range(FIRST_VMID, FIRST_VMID + args.vms)]
            measure(api, urls, args.rate, 3.0)  # warm up: the view, the kept answers
            print(f"  {'window':<30} {'200s':>6}")
            scraped: list[float] = []
            sizes: list[int] = []
            for _ in range(args.rounds):
                print(row("no scrape (baseline)", measure(api, urls, args.rate, args.duration)),
                      flush=True)
                with Scraper(base, args.every) as scraper:
                    w = measure(api, urls, args.rate, args.duration)
                print(row(f"scraped ({len(scraper.times)} scrapes)", w), flush=True)
                scraped += scraper.times
                sizes += scraper.sizes
            if scraped:
                print(f"  a scrape: median {statistics.median(scraped):.0f} ms, max "
                      f"{max(scraped):.0f} ms, {statistics.median(sizes) / 1024:.0f} KiB")
        finally:
            stop_all(procs)


if __name__ == "__main__":
    main()
