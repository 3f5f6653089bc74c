"""Live migration: raw QEMU vs `corral vm migrate`, for the same VMs in one run.

Prints figures, asserts nothing. Run: .venv/bin/python bench/migration.py
Two guests: the idle tiny VM (its memory is nearly all zero pages, so QEMU moves it in a blink
and any fixed cost dominates) and a busy one holding 256 MiB of random data in memory.
1. raw: two QEMU processes started with Corral's driver, `migrate` over QMP, polled to the end
   (timed with and without starting the target QEMU, which Corral's figure includes);
2. corral: a temporary two-host lab (`corral lab up --nodes 2`), the same VMs,
   timed as the CLI command and as the task itself.
Guest-observed downtime comes from heartbeat arrival times on the serial logs (the guest
prints one a second: the longest gap minus one second), next to QEMU's own `downtime`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from corral.cluster.models import VMConfig
from corral.image.tiny import build_tiny
from corral.lab.layout import spare_base_port
from corral.migration.net import free_port
from corral.qemu.driver import QemuDriver

# name -> (memory MiB, extra kernel command line)
GUESTS = {"idle": (96, ""), "busy": (512, "corral.memfill=256")}
BEAT = re.compile(rb"corral-heartbeat (\d+)")
IMAGES = Path(os.environ.get("CORRAL_IMAGES_DIR", "/var/lib/corral/images"))


class BeatClock:
    """Host arrival time of each heartbeat, from serial logs polled every 10 ms."""

    def __init__(self, logs: list[Path]) -> None:
        self.logs = logs
        self.seen: dict[int, float] = {}
        self.offsets = dict.fromkeys(logs, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for log in self.logs:
                try:
                    data = log.read_bytes()
                except OSError:
                    continue
                if len(data) < self.offsets[log]:
                    self.offsets[log] = 0  # a new QEMU truncated it
                for m in BEAT.finditer(data, self.offsets[log]):
                    self.seen.setdefault(int(m[1]), time.monotonic())
                self.offsets[log] = data.rfind(b"\n") + 1 if b"\n" in data else 0
            time.sleep(0.01)

    def stop(self) -> float:
        """Guest-observed pause in ms: the longest gap between heartbeats beyond a second."""
        time.sleep(2.5)  # a couple of beats after the move
        self._stop.set()
        self._thread.join()
        beats = sorted(self.seen.items())
        gaps = [b[1] - a[1] for a, b in zip(beats, beats[1:], strict=False)]
        return max(0.0, (max(gaps) - 1.0) * 1000) if gaps else float("nan")


async def wait_beats(log: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(BEAT.findall(log.read_bytes() if log.exists() else b"")) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"no heartbeat in {log}")
        await asyncio.sleep(0.1)


async def raw(root: Path, guest: str) -> dict[str, float]:
    memory, append = GUESTS[guest]
    cfg = VMConfig(vmid=900, name="bench", memory_mb=memory, cores=1, append=append)
    src = QemuDriver(root / "a", IMAGES, "tcg")
    dst = QemuDriver(root / "b", IMAGES, "tcg")
    await src.start(cfg, [])
    try:
        await wait_beats(src.paths(900).serial_log, 3)
        clock = BeatClock([src.paths(900).serial_log, dst.paths(900).serial_log])
        t0 = time.monotonic()
        uri = f"tcp:127.0.0.1:{free_port('127.0.0.1')}"
        await dst.start(cfg, [], incoming=uri)
        t1 = time.monotonic()
        await src.qmp(900, "migrate-set-parameters", {"max-bandwidth": 100 * 1024**3})
        await src.qmp(900, "migrate", {"uri": uri})
        while (reply := await src.qmp(900, "query-migrate"))["status"] != "completed":
            if reply["status"] in ("failed", "cancelled"):
                raise SystemExit(f"raw migration {reply['status']}")
            await asyncio.sleep(0.01)
        t2 = time.monotonic()
        pause_ms = clock.stop()
        return {"with_start_s": t2 - t0, "migrate_s": t2 - t1,
                "downtime_ms": float(reply.get("downtime", 0)), "guest_pause_ms": pause_ms}
    finally:
        await src.stop(900)
        await dst.stop(900)


def corral(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    proc = subprocess.run([sys.executable, "-m", "corral.cli.main", *args], env=env, text=True,
                          capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"corral {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def orchestrated(root: Path) -> dict[str, dict[str, Any]]:
    base = spare_base_port()
    env = {**os.environ, "CORRAL_CONFIG": str(root / "client.json"),
           "CORRAL_IMAGES_DIR": str(IMAGES), "CORRAL_LAB_DIR": str(root / "lab")}
    env.pop("CORRAL_URL", None)
    env.pop("CORRAL_TOKEN", None)
    corral(env, "lab", "up", "--nodes", "2", "--vms", "0", "--accel", "tcg",
           "--base-port", str(base), "--api-port", str(base + 390))
    try:
        return {guest: orchestrated_one(root, env, guest) for guest in GUESTS}
    finally:
        subprocess.run([sys.executable, "-m", "corral.cli.main", "lab", "down"], env=env,
                       capture_output=True, timeout=120)


def orchestrated_one(root: Path, env: dict[str, str], guest: str) -> dict[str, Any]:
    memory, append = GUESTS[guest]
    corral(env, "vm", "create", "--name", guest, "--memory", str(memory), "--node", "n1",
           "--append", append)
    vmid = str(next(v["vmid"] for v in json.loads(corral(env, "vm", "list", "--json"))
                    if v["name"] == guest))
    corral(env, "vm", "start", vmid)
    logs = [root / "lab/nodes" / n / "run" / f"{vmid}.serial.log" for n in ("n1", "n2")]
    asyncio.run(wait_beats(logs[0], 3))
    clock = BeatClock(logs)
    t0 = time.monotonic()
    reply = json.loads(corral(env, "vm", "migrate", vmid, "n2", "--json"))
    cli_s = time.monotonic() - t0
    guest_pause = clock.stop()
    task = json.loads(corral(env, "task", "show", reply["task"], "--json"))
    r = reply["result"]
    corral(env, "vm", "stop", vmid)
    return {"cli_s": cli_s, "task_s": task["ended_at"] - task["created_at"],
            "handler_s": r["total_time_s"], "downtime_ms": r["downtime_ms"],
            "switchover_ms": r["switchover_ms"], "guest_pause_ms": guest_pause,
            "bytes": r["bytes"]}


def main() -> None:
    build_tiny(IMAGES, log=lambda _line: None)
    root = Path(tempfile.mkdtemp(prefix="bm-", dir="/tmp"))
    try:
        raws = {guest: asyncio.run(raw(root, guest)) for guest in GUESTS}
        ours = orchestrated(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for guest, (memory, append) in GUESTS.items():
        r, c = raws[guest], ours[guest]
        print(f"{guest} guest: {memory} MiB {append or '(idle)'}, TCG, no disk, loopback")
        print(f"  raw QEMU   migrate only          {r['migrate_s']:7.3f} s")
        print(f"  raw QEMU   + start target QEMU   {r['with_start_s']:7.3f} s   "
              f"downtime {r['downtime_ms']:.0f} ms (QEMU), "
              f"guest pause {r['guest_pause_ms']:.0f} ms")
        print(f"  corral     vm.migrate task       {c['task_s']:7.3f} s   "
              f"(handler {c['handler_s']:.3f} s)")
        print(f"  corral     `corral vm migrate`   {c['cli_s']:7.3f} s   "
              f"downtime {c['downtime_ms']} ms (QEMU) + {c['switchover_ms']} ms switchover, "
              f"guest pause {c['guest_pause_ms']:.0f} ms, {c['bytes'] / 2**20:.1f} MiB")
        print(f"  ratio task / raw (with start)    {c['task_s'] / r['with_start_s']:7.2f}   "
              "(goal <= 1.20)")
        print(f"  ratio CLI  / raw (with start)    {c['cli_s'] / r['with_start_s']:7.2f}")


if __name__ == "__main__":
    main()
