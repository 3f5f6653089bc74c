"""QMP under load: many short driver exchanges against a VM with an active block mirror while
block-job, guest and migration events flow, on a machine kept busy by CPU hogs.

Prints figures, asserts nothing. Run: .venv/bin/python bench/qmp_stress.py [--exchanges N]
[--hogs N] [--client corral|qemu.qmp]. `--client qemu.qmp` runs the same load through
qemu.qmp's QMPClient (one connection per exchange, as the driver did before), to compare.
The scenario is shared with tests/integration/test_qmp_stress.py (tests/integration/qmp_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from qmp_load import SideMonitorDriver, hammer, mirrored_vm  # noqa: E402

from corral.image.tiny import build_tiny  # noqa: E402
from corral.qemu.driver import QMP_TIMEOUT, Guard, QemuError  # noqa: E402

IMAGES = Path(os.environ.get("CORRAL_IMAGES_DIR", "/var/lib/corral/images"))
VMID = 100


class QemuQmpDriver(SideMonitorDriver):
    """The exchange as it was: qemu.qmp's client, one connection per exchange."""

    async def _qmp(self, vmid: int, command: str, arguments: dict[str, Any] | None = None,
                   wait: float = QMP_TIMEOUT, guard: Guard | None = None) -> Any:
        from qemu.qmp import QMPClient

        async with self._qmp_locks[vmid]:
            if guard is not None:  # as the driver does: last, right before the command
                await guard()
            client = QMPClient(f"vm{vmid}")
            try:
                await asyncio.wait_for(client.connect(str(self.paths(vmid).qmp_socket)), wait)
                return await asyncio.wait_for(client.execute(command, arguments), wait)
            except TimeoutError:
                raise
            except Exception as exc:
                raise QemuError(f"VM {vmid}: QMP {command} failed: {exc}") from exc
            finally:
                with contextlib.suppress(Exception):
                    await client.disconnect()


def start_hogs(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop_hogs(hogs: list[subprocess.Popen[bytes]]) -> None:
    for hog in hogs:
        hog.send_signal(signal.SIGKILL)
        hog.wait()


async def run(args: argparse.Namespace) -> None:
    build_tiny(IMAGES, log=lambda _line: None)
    run_dir = Path(tempfile.mkdtemp(prefix="cqs", dir="/tmp"))  # short: unix socket paths
    cls = QemuQmpDriver if args.client == "qemu.qmp" else SideMonitorDriver
    driver = cls(run_dir, IMAGES, "tcg")
    hogs = start_hogs(args.hogs)
    try:
        async with mirrored_vm(driver, VMID, run_dir) as side:
            figures = await hammer(driver, VMID, side, args.exchanges, args.time_limit)
    finally:
        stop_hogs(hogs)
        if (pid := driver.pid(VMID)) is not None:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"client {args.client}, {args.hogs} CPU hogs on {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(figures.summary())
    kinds = Counter(f.split(":", 1)[0] if ":" in f else f for f in figures.failures)
    for what, count in kinds.most_common():
        print(f"  {count} x {what}")
    for failure in figures.failures[:5]:
        print(f"  e.g. {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=20000)
    parser.add_argument("--hogs", type=int, default=2, help="busy-loop processes meanwhile")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds, at most")
    parser.add_argument("--client", choices=["corral", "qemu.qmp"], default="corral")
    started = time.monotonic()
    asyncio.run(run(parser.parse_args()))
    print(f"({time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
