"""The VM page's serial console in a real Chromium, against a real etcd, agent, API and the
tiny guest under QEMU: heartbeat lines arrive in the terminal, and what is typed there
reaches the guest's shell."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from corral.api import webui
from corral.cluster.models import StorageConfig, StorageType
from corral.cluster.store import Store
from corral.lab.etcd import free_port
from tests.browser.conftest import TOKEN, Console, in_etcd, log_in, screenshot, wait_for_api

pytestmark = pytest.mark.browser

VMID = 100
BOOT_TIMEOUT = 60.0
# The guest boots under TCG on a shared machine: its first lines may take a while.
TERMINAL_TIMEOUT_MS = 45_000


async def wipe(store: Store) -> None:
    await store.client.delete_prefix(b"/corral/")
    await store.add_token(TOKEN)
    await store.put_storage(StorageConfig(id="local", type=StorageType.DIR,
                                          path="storage/local"))


def until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def lab(etcd_endpoint: str, tiny_images: Path) -> Iterator[Console]:
    """n1's real agent and the API serving the built console, with VM 100 running on n1."""
    reason = webui.not_built(webui.find_dist())
    if reason:
        pytest.fail(f"{reason} (`make test` builds it)")
    in_etcd(etcd_endpoint, wipe)
    root = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))  # short: unix socket paths
    agent_log = (root / "agent.log").open("wb")
    agent = subprocess.Popen(
        [sys.executable, "-m", "corral.cli.main", "agent", "run", "--node", "n1",
         "--data-dir", str(root / "n1"), "--images-dir", str(tiny_images),
         "--etcd", etcd_endpoint, "--accel", "tcg", "--lease-ttl", "4"],
        stdout=agent_log, stderr=subprocess.STDOUT)
    port = free_port()
    api_log = (root / "api.log").open("wb")
    api = subprocess.Popen(
        [sys.executable, "-c", "from corral.api.serve import serve; "
         f"serve([{etcd_endpoint!r}], host='127.0.0.1', port={port})"],
        stdout=api_log, stderr=subprocess.STDOUT)
    console = Console(f"http://127.0.0.1:{port}", etcd_endpoint)
    try:
        wait_for_api(console.url, api)
        with console.api() as client:
            until(lambda: any(n["online"] for n in client.get("/nodes").json()), 30,
                  "n1's agent to register")
            created = client.post("/vms", json={"vmid": VMID, "name": "tty", "memory_mb": 96,
                                                "cores": 1, "node": "n1"})
            assert created.status_code == 202, created.text
            until(lambda: task_done(client, created.json()["task"]), 30, "vm.create")
            started = client.post(f"/vms/{VMID}/status/start")
            assert started.status_code == 202, started.text
            until(lambda: client.get(f"/vms/{VMID}").json()["status"] == "running",
                  BOOT_TIMEOUT, f"VM {VMID} to run")
        yield console
    finally:
        stop(api)
        stop(agent)
        for pidfile in (root / "n1" / "run").glob("*.pid"):  # QEMU outlives its agent
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        agent_log.close()
        api_log.close()
        if not os.environ.get("CORRAL_KEEP_TMP"):
            shutil.rmtree(root, ignore_errors=True)


def task_done(client: httpx.Client, task: str) -> bool:
    state = client.get(f"/tasks/{task}").json()["state"]
    assert state != "error", f"task {task} failed"
    return bool(state == "ok")


def test_the_vm_page_console_streams_and_types(lab: Console, page: Page) -> None:
    log_in(page, lab)
    page.goto(f"{lab.url}/#/vm/{VMID}")
    console = page.get_by_test_id("serial-console")
    screen = console.locator(".xterm-rows")
    expect(screen).to_contain_text("corral-heartbeat", timeout=TERMINAL_TIMEOUT_MS)
    expect(console.get_by_test_id("serial-status")).to_have_attribute("data-phase", "open")

    # Keystrokes reach the guest: Enter starts its shell, and a command's result (not the
    # echo of what was typed) appears.
    console.locator(".serial-screen").click()
    page.keyboard.press("Enter")
    expect(screen).to_contain_text("tiny#", timeout=TERMINAL_TIMEOUT_MS)
    page.keyboard.type("echo $((6*7))corral")
    page.keyboard.press("Enter")
    expect(screen).to_contain_text("42corral", timeout=TERMINAL_TIMEOUT_MS)
    # Heartbeats go on arriving live after typing.
    last = last_heartbeat(screen.inner_text())
    until(lambda: last_heartbeat(screen.inner_text()) > last, 15,
          f"a heartbeat after {last} in the terminal")
    screenshot(page, "vm-console")


def last_heartbeat(text: str) -> int:
    return max((int(n) for n in re.findall(r"corral-heartbeat (\d+)", text)), default=0)
