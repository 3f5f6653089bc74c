"""The web console in Debian's Chromium, against a real etcd and the real API in a uvicorn
process on loopback. The hosts are simulated records (info, alive key, usage sample, a
maintenance request) and the VMs are records with runtime reports: the dashboard reads only
what the API answers, so no QEMU or agent is needed for it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from corral.api import webui
from corral.cluster import keys
from corral.cluster.models import (
    Disk,
    NodeInfo,
    NodeRequest,
    NodeUsage,
    Placement,
    RunState,
    Task,
    TaskState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.store import Store
from corral.ha.models import HASettings, HAState, VMHAState, VMStatusHA
from corral.ha.store import put_settings, put_state
from corral.lab.etcd import free_port

TOKEN = "browser-test-token"
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
API_START_TIMEOUT = 20.0
# Playwright waits at most this long for anything the page should show (polling is 2 s).
UI_TIMEOUT_MS = 10_000

# (name, cpus, memory MiB, alive, in maintenance, cpu fraction, memory used MiB)
HOSTS = [
    ("n1", 8, 16384, True, False, 0.25, 9000),
    ("n2", 4, 8192, True, True, 0.05, 1200),
    ("n3", 4, 8192, False, False, None, None),
    ("n4", 2, 4096, True, False, 0.5, 2000),
]
# (vmid, name, host, memory MiB, cores, observed status or None for no report yet)
VMS = [
    (100, "web1", "n1", 2048, 2, VMStatus.RUNNING),
    (101, "web2", "n1", 1024, 1, VMStatus.RUNNING),
    (102, "db1", "n1", 4096, 4, VMStatus.PAUSED),
    (103, "batch", "n2", 512, 1, VMStatus.STOPPED),
    (104, "legacy", "n3", 1024, 2, VMStatus.RUNNING),  # host offline: status unknown
    (105, "cache", "n4", 2048, 4, VMStatus.RUNNING),
    (106, "build", "n4", 1024, 6, VMStatus.STARTING),
    (107, "spare", "n1", 256, 1, None),
]
HA_VMS = {100: VMStatusHA.STARTED, 101: VMStatusHA.ERROR}
# Disk space of the hosts' data file systems (used, total MiB); n4's agent does not say.
HOST_DISKS = {"n1": (120_000, 400_000), "n2": (30_000, 200_000)}
# Disks of the VMs (MiB), a stopped VM's among them: its disk still takes room.
VM_DISKS = {100: 20_480, 102: 51_200, 103: 10_240}


def chromium_path() -> str:
    """Debian's Chromium (the binary, not its wrapper script); never a downloaded browser."""
    for candidate in (os.environ.get("CORRAL_CHROMIUM"), "/usr/lib/chromium/chromium",
                      shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("Debian's chromium is not installed: run `make test`, which installs it")


def in_etcd(endpoint: str, change: Callable[[Store], Awaitable[None]]) -> None:
    """Runs one change against etcd from a synchronous test. In a thread of its own: the
    thread of Playwright's sync API counts as running an event loop."""
    async def run() -> None:
        async with Store([endpoint]) as store:
            await change(store)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result(timeout=30)


async def seed(store: Store) -> None:
    await store.client.delete_prefix(b"/corral/")
    await store.add_token(TOKEN)
    for name, cpus, memory, alive, maintenance, cpu, used in HOSTS:
        await store.put(keys.node(name, "info"), NodeInfo(name=name, cpus=cpus,
                                                          memory_mb=memory))
        if alive:
            await store.client.put(keys.node(name, "alive").encode(), b"1")
        if cpu is not None and used is not None:
            disk_used, disk_total = HOST_DISKS.get(name, (None, None))
            await store.put(keys.node(name, "usage"), NodeUsage(
                cpu=cpu, memory_used_mb=used, memory_total_mb=memory, load1=cpu * cpus,
                disk_used_mb=disk_used, disk_total_mb=disk_total))
        if maintenance:
            await store.put(keys.node(name, "request"), NodeRequest(maintenance=True))
    for vmid, name, host, memory, cores, status in VMS:
        running = status in (VMStatus.RUNNING, VMStatus.STARTING)
        state = RunState.PAUSED if status == VMStatus.PAUSED else (
            RunState.RUNNING if running else RunState.STOPPED)
        disks = [Disk(volume=f"local:vm-{vmid}-disk-0.qcow2", size_mb=VM_DISKS[vmid])
                 ] if vmid in VM_DISKS else []
        assert await store.create_vm(VMConfig(vmid=vmid, name=name, memory_mb=memory,
                                              cores=cores, disks=disks),
                                     Placement(node=host, state=state))
        if status is not None:
            await store.put_runtime(vmid, VMRuntime(node=host, status=status, pid=1000 + vmid))
    for vmid in HA_VMS:
        await put_settings(store, HASettings(vmid=vmid))
    await put_state(store, HAState(vms={
        vmid: VMHAState(status=s, node="n1",
                        reason="gave up: start failed twice" if s == VMStatusHA.ERROR else "")
        for vmid, s in HA_VMS.items()}))
    now = time.time()
    await store.put_task(Task(id="t-start-100", kind="vm.start", node="n1", vmid=100,
                              state=TaskState.OK, progress=1.0, created_at=now - 60))
    await store.put_task(Task(id="t-start-101", kind="vm.start", node="n1", vmid=101,
                              state=TaskState.ERROR, created_at=now - 30,
                              error="qemu exited: could not open disk"))
    await store.put_task(Task(id="t-migrate-102", kind="vm.migrate", node="n1", vmid=102,
                              state=TaskState.RUNNING, progress=0.4, created_at=now - 5))


@dataclass(frozen=True)
class Console:
    url: str  # the API's root, where the console is
    etcd: str

    def api(self, token: str = TOKEN) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1", timeout=10.0,
                            headers={"Authorization": f"Bearer {token}"})


def wait_for_api(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + API_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the API exited at start-up with {proc.returncode}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the API did not answer within {API_START_TIMEOUT} s")


@pytest.fixture(scope="module")
def console(etcd_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """The API serving the built console, on a seeded etcd (wiped first)."""
    reason = webui.not_built(webui.find_dist())
    if reason:
        pytest.fail(f"{reason} (`make test` builds it)")
    in_etcd(etcd_endpoint, seed)
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "api.log"
    code = ("from corral.api.serve import serve; "
            f"serve([{etcd_endpoint!r}], host='127.0.0.1', port={port})")
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_api(url, proc)
        yield Console(url, etcd_endpoint)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (no token, no theme picked) at 1440x900 on a light system theme."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    context.set_default_timeout(UI_TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield pg
    finally:
        context.close()
    # A script error or a resource the content security policy blocked is a failure; an
    # API answer with an error status is the page's to show, not one.
    assert not [e for e in errors if not e.startswith("Failed to load resource: the server "
                                                      "responded with a status of")], errors


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def log_in(page: Page, console: Console, token: str = TOKEN) -> None:
    """Sign in and wait for the answer (signed in, or the refusal): a test that goes to another
    page before it comes is sent back to the start page when it does."""
    page.goto(console.url + "/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    answered = page.get_by_role("button", name="Sign out").or_(page.get_by_test_id("login-error"))
    # The suite's first sign-in: a cold browser on a busy machine may take a while.
    expect(answered).to_be_visible(timeout=30_000)
