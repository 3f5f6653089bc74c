"""Open-loop load on the Corral API: requests leave on a fixed schedule whatever the replies.

    python bench/loadgen.py --api URL --token T --rate 200 --duration 10 \
        --vmids 100-5099 --nodes sim-host-000,sim-host-001 [--write-vmid-base 900000]

Latency is measured from each request's SCHEDULED send time, so a slow server shows in the
figures instead of slowing the generator down (no coordinated omission). Prints one JSON
object: per route the latencies of each reply by status, timeouts and transport errors, how
late the generator itself was to put each request on its way (its own lag on a busy
machine), and the refusals' latency from their actual send as well. A request waits for one
of --connections keep-alive connections; that wait counts in its latency, and one still
waiting at its deadline counts as a timeout.

The writes are a VM create (POST /vms, stopped, on a simulated host) and the delete of a VM
this run created a while before (DELETE /vms/{id}): they leave the VM count as it was and
start no guest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# (route label, weight): the main reads, and a few writes.
MIX: tuple[tuple[str, int], ...] = (
    ("GET /vms", 8),
    ("GET /vms?limit=100", 14),
    ("GET /vms/{id}", 30),
    ("GET /nodes", 14),
    ("GET /ha/status", 10),
    ("GET /tasks", 10),
    ("POST /vms", 7),
    ("DELETE /vms/{id}", 7),
)
DELETE_AFTER = 1.0  # seconds: a VM created this long ago has had its create task finished


@dataclass
class Results:
    latencies: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    timeouts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    send_lag: list[float] = field(default_factory=list)
    # 503s timed from the moment the request was handed to the client library instead: the
    # API's share of a refusal, without the generator's own lag in sending it.
    refused_from_send: list[float] = field(default_factory=list)


class Load:
    def __init__(self, client: aiohttp.ClientSession, vmids: list[int], nodes: list[str],
                 write_base: int) -> None:
        self.client = client
        self.vmids = vmids
        self.nodes = nodes
        self.next_write = write_base
        self.created: deque[tuple[float, int]] = deque()  # (monotonic, vmid) to delete later
        self.results = Results()
        self.rng = random.Random(7)

    def request(self, route: str) -> tuple[str, str, str, Any]:
        """(label, method, path, json body) for one request of a route."""
        if route == "GET /vms?limit=100":
            return route, "GET", "/api/v1/vms?limit=100", None
        if route == "GET /vms/{id}":
            return route, "GET", f"/api/v1/vms/{self.rng.choice(self.vmids)}", None
        if route == "POST /vms" or (route == "DELETE /vms/{id}" and not self._deletable()):
            vmid = self.next_write
            self.next_write += 1
            body = {"vmid": vmid, "name": f"bench-w{vmid}", "memory_mb": 64, "cores": 1,
                    "node": self.rng.choice(self.nodes), "description": "control-plane bench"}
            return "POST /vms", "POST", "/api/v1/vms", body
        if route == "DELETE /vms/{id}":
            _, vmid = self.created.popleft()
            return route, "DELETE", f"/api/v1/vms/{vmid}", None
        method, path = route.split(" ", 1)
        return route, method, "/api/v1" + path, None

    def _deletable(self) -> bool:
        return bool(self.created) and time.monotonic() - self.created[0][0] > DELETE_AFTER

    async def one(self, scheduled: float, route: str, timeout: float) -> None:
        label, method, path, body = self.request(route)
        left = scheduled + timeout - time.monotonic()
        if left <= 0:  # waited for a connection past its deadline: never sent
            self.results.timeouts[label] += 1
            return
        sent = time.monotonic()
        try:
            status, data = await asyncio.wait_for(self.send(method, path, body), left)
        except TimeoutError:
            self.results.timeouts[label] += 1
            return
        except aiohttp.ClientError as e:
            self.results.errors[f"{label}: {type(e).__name__}"] += 1
            return
        done = time.monotonic()
        self.results.latencies[label][str(status)].append(done - scheduled)
        if status == 503:
            self.results.refused_from_send.append(done - sent)
        if label == "POST /vms" and status == 202:
            self.created.append((time.monotonic(), int(json.loads(data)["vmid"])))

    async def send(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        async with self.client.request(method, path, json=body) as reply:
            return reply.status, await reply.read()  # read whole: the connection is reused

    async def worker(self, queue: asyncio.Queue[tuple[float, str] | None],
                     timeout: float) -> None:
        while (item := await queue.get()) is not None:
            await self.one(*item, timeout)


def schedule(rate: float, duration: float, seed: int = 11) -> list[str]:
    """The routes of the requests, in order, by the mix's weights."""
    rng = random.Random(seed)
    routes = [r for r, _ in MIX]
    weights = [w for _, w in MIX]
    return rng.choices(routes, weights, k=int(rate * duration))


async def run(api: str, token: str, rate: float, duration: float, vmids: list[int],
              nodes: list[str], write_base: int, timeout: float, connections: int
              ) -> dict[str, Any]:
    # aiohttp, not httpx: on a 2-core machine shared with the API, a generator that needs a
    # core of its own for 500 requests/s measures itself.
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base_url=api, headers={"Authorization": f"Bearer {token}"},
                                     connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as client:
        load = Load(client, vmids, nodes, write_base)
        routes = schedule(rate, duration)
        # One worker per connection takes the requests in schedule order: the client's pool
        # gets no queue of waiters, which costs it more CPU than the requests themselves.
        queue: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()
        workers = [asyncio.create_task(load.worker(queue, timeout))
                   for _ in range(connections)]
        cpu_start = time.process_time()
        start = time.monotonic() + 0.2
        for i, route in enumerate(routes):
            scheduled = start + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            load.results.send_lag.append(time.monotonic() - scheduled)
            queue.put_nowait((scheduled, route))
        sent_for = time.monotonic() - start
        for _ in workers:
            queue.put_nowait(None)
        # Every request is bounded by its deadline; this wait is the last one's.
        _, late = await asyncio.wait(workers, timeout=timeout + 5)
        for w in late:
            w.cancel()
        finished = time.monotonic() - start
        cpu = time.process_time() - cpu_start
    r = load.results
    return {"rate": rate, "duration": duration, "requests": len(routes),
            "sent_for": sent_for, "finished_after": finished, "cpu_seconds": cpu,
            "latencies": {k: dict(v) for k, v in r.latencies.items()},
            "timeouts": dict(r.timeouts), "errors": dict(r.errors), "send_lag": r.send_lag,
            "refused_from_send": r.refused_from_send}


def vmid_range(text: str) -> list[int]:
    low, _, high = text.partition("-")
    return list(range(int(low), int(high or low) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    parser.add_argument("--vmids", required=True, help="VMs to read, as LOW-HIGH")
    parser.add_argument("--nodes", required=True, help="hosts for created VMs, comma separated")
    parser.add_argument("--write-vmid-base", type=int, default=900_000)
    parser.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not 0 < args.rate <= 5000 or not 0 < args.duration <= 600:
        parser.error("--rate: 0 to 5000 per second; --duration: 0 to 600 s")
    result = asyncio.run(run(args.api, args.token, args.rate, args.duration,
                             vmid_range(args.vmids), args.nodes.split(","),
                             args.write_vmid_base, args.timeout, args.connections))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
