"""One Corral manager in a process of its own, so the control-plane bench can measure its CPU.

    python bench/manager_runner.py --etcd URLS [--name bench-manager] [--passes-file PATH]

It holds a lease the way an agent's host does and runs `corral.manager.loop.serve` with it,
as every agent does. With --passes-file, each manager pass appends one line "start seconds"
(monotonic start, wall duration of the pass: read, decide, apply) and each pure decision
"decide seconds"; when the manager's code offers no pass to time, the file stays empty and the
bench prints n/a.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from corral.cluster.store import Store
from corral.cluster.view import ClusterView
from corral.cluster.view_gc import freeze_listed
from corral.manager import loop

log = logging.getLogger("manager-runner")


def _timed_async(fn: Callable[..., Any], out: TextIO, label: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return await fn(*args, **kwargs)
        finally:
            out.write(f"{label} {start:.6f} {time.monotonic() - start:.6f}\n")
            out.flush()
    return wrapper


def _timed_sync(fn: Callable[..., Any], out: TextIO, label: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            out.write(f"{label} {start:.6f} {time.monotonic() - start:.6f}\n")
            out.flush()
    return wrapper


def instrument(out: TextIO) -> list[str]:
    """Time the manager's passes from outside its code, where its code has them; returns what
    is timed."""
    timed = []
    manager = getattr(loop, "Manager", None)
    if manager is not None and asyncio.iscoroutinefunction(getattr(manager, "tick", None)):
        manager.tick = _timed_async(manager.tick, out, "pass")
        timed.append("pass")
    # The loop's decision entry point: decide_with_balance now, decide_with_ha before.
    for name in ("decide_with_balance", "decide_with_ha"):
        decide = getattr(loop, name, None)
        if callable(decide):
            setattr(loop, name, _timed_sync(decide, out, "decide"))
            timed.append("decide")
            break
    return timed


async def keep_alive(store: Store, lease: Any, ttl: int) -> None:
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            await store.refresh_lease(lease)
        except Exception as e:
            log.warning("lease renewal failed: %s", e)


async def run(endpoints: list[str], name: str, ttl: int) -> None:
    # The agent's view, as an agent holds it (its monitor shares it with the manager).
    async with Store(endpoints) as store, ClusterView(store) as view:
        freeze_listed(view)
        lease = await store.grant_lease(ttl)
        jobs = [asyncio.create_task(keep_alive(store, lease, ttl)),
                asyncio.create_task(loop.serve(store, view, name, lambda: lease))]
        stop = asyncio.Event()
        aloop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            aloop.add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([*jobs, waiter], return_when=asyncio.FIRST_COMPLETED)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        with contextlib.suppress(Exception):
            await store.revoke_lease(lease)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etcd", required=True, help="etcd client URLs, comma separated")
    parser.add_argument("--name", default="bench-manager")
    parser.add_argument("--lease-ttl", type=int, default=9)
    parser.add_argument("--passes-file", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.ExitStack() as stack:
        if args.passes_file is not None:
            out = stack.enter_context(args.passes_file.open("a", buffering=1))
            log.info("timing: %s", ", ".join(instrument(out)) or "nothing (n/a)")
        asyncio.run(run(args.etcd.split(","), args.name, args.lease_ttl))


if __name__ == "__main__":
    main()
