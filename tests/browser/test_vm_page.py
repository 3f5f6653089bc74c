"""The VM page on a real lab (3 hosts with their agents, real QEMU guests, the lab's API
serving the console): a live migration started from the page, a state change made through
the API that arrives through the events stream, a refusal shown with the API's reason, and
destructive actions that ask first. One lab for the module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import screenshot
from tests.e2e.labtools import Lab, running_lab, wait_until

pytestmark = pytest.mark.browser

# A guest under TCG on a shared 2-core machine: a state change or a migration takes seconds.
STATE_TIMEOUT_MS = 60_000
MIGRATE_TIMEOUT_MS = 180_000


@dataclass(frozen=True)
class LabConsole:
    lab: Lab
    url: str  # the API's root, where the console is
    token: str

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1", timeout=30.0,
                            headers={"Authorization": f"Bearer {self.token}"})

    def get(self, path: str) -> Any:
        with self.api() as api:
            r = api.get(path)
            r.raise_for_status()
            return r.json()

    def vm(self, vmid: int) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/vms/{vmid}")
        return found


@pytest.fixture(scope="module")
def lab_console(tiny_images: Path) -> Iterator[LabConsole]:
    """Plain HTTP on loopback (--no-cluster): the browser needs no CA. tiny1 (100) runs on n1
    and tiny2 (101) on n2."""
    with running_lab(tiny_images, "lab-vmpage-", "--vms", "2", "--no-cluster",
                     "--no-netns") as lab:
        config = json.loads(Path(lab.env["CORRAL_CONFIG"]).read_text())
        console = LabConsole(lab, str(config["url"]).rstrip("/").removesuffix("/api/v1"),
                             str(config["token"]))
        wait_until(lambda: all(console.vm(v)["status"] == "running" for v in (100, 101)),
                   60, "the lab's VMs running")
        yield console


def open_vm_page(page: Page, console: LabConsole, vmid: int) -> None:
    page.goto(console.url + "/")
    page.get_by_label("API token").fill(console.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("link")).to_be_visible()  # signed in
    page.goto(f"{console.url}/#/vm/{vmid}")
    expect(page.get_by_test_id("vm-page")).to_contain_text(f"VM {vmid}")
    expect(page.get_by_test_id("link")).to_have_attribute("data-state", "live")


def status_of(page: Page) -> Any:
    return page.get_by_test_id("vm-status-value")


def test_a_state_change_made_through_the_api_arrives_through_the_stream(
        page: Page, lab_console: LabConsole) -> None:
    open_vm_page(page, lab_console, 101)
    expect(status_of(page)).to_have_text("running", timeout=STATE_TIMEOUT_MS)
    reads: list[str] = []

    def seen(r: Request) -> None:
        if "/api/v1/" in r.url and r.method == "GET":
            reads.append(r.url.split("/api/v1", 1)[1])

    page.on("request", seen)
    with lab_console.api() as api:
        assert api.post("/vms/101/status/suspend").status_code == 202
        expect(status_of(page)).to_have_text("paused", timeout=STATE_TIMEOUT_MS)
        # The task made through the API shows in the page's history as well.
        expect(page.locator("[data-testid=vm-task][data-kind='vm.suspend']")).to_have_attribute(
            "data-state", "ok", timeout=STATE_TIMEOUT_MS)
        assert api.post("/vms/101/status/resume").status_code == 202
        expect(status_of(page)).to_have_text("running", timeout=STATE_TIMEOUT_MS)
    # Nothing polled the lists meanwhile: the changes came through the stream (the page reads
    # its VM's own record again when the stream says it changed).
    polled = [r for r in reads if r.split("?")[0] in ("/vms", "/nodes", "/tasks", "/ha/status")]
    assert polled == [], reads


def test_destructive_actions_ask_first_and_a_refusal_shows_the_api_s_reason(
        page: Page, lab_console: LabConsole) -> None:
    open_vm_page(page, lab_console, 101)
    expect(status_of(page)).to_have_text("running", timeout=STATE_TIMEOUT_MS)
    before = {t["id"] for t in lab_console.get("/tasks?vmid=101")}

    # Stop asks first; cancelled, nothing is queued.
    page.get_by_role("toolbar", name="VM actions").get_by_role("button", name="Stop").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text("powered off at once")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)

    # Delete asks for the VM's name; the API refuses a running VM without force, and the
    # dialog shows its reason.
    with lab_console.api() as api:
        refused = api.delete("/vms/101")  # the same refusal, nothing queued
    assert refused.status_code == 409
    reason = refused.json()["error"]["message"]
    page.get_by_role("button", name="Delete…").click()
    delete = dialog.get_by_role("button", name="Delete")
    expect(delete).to_be_disabled()
    dialog.get_by_label("confirmation").fill("tiny")
    expect(delete).to_be_disabled()
    dialog.get_by_label("confirmation").fill("tiny2")
    expect(delete).to_be_enabled()
    screenshot(page, "vm-delete-confirm")
    delete.click()
    error = dialog.get_by_test_id("action-error")
    expect(error).to_contain_text(reason)
    expect(error).to_contain_text("conflict")
    dialog.get_by_role("button", name="Cancel").click()

    assert lab_console.vm(101)["status"] == "running"
    assert {t["id"] for t in lab_console.get("/tasks?vmid=101")} == before


def test_a_vm_migrates_live_from_its_page(page: Page, lab_console: LabConsole) -> None:
    with lab_console.api() as api:  # 101 on n2 keeps 100 off n2
        assert api.post("/ha/rules", json={"name": "apart", "kind": "anti-affinity",
                                           "vms": [100, 101]}).status_code == 201
    try:
        open_vm_page(page, lab_console, 100)
        page.evaluate("window.__sameDocument = true")
        node = page.locator("[data-testid=vm-page] dd[data-field=node]")
        expect(node).to_have_text("n1")
        page.get_by_role("button", name="Migrate…").click()
        dialog = page.get_by_test_id("migrate-dialog")

        def target(name: str) -> Any:
            return dialog.locator(f"[data-testid=target][data-node={name}]")

        expect(target("n1")).to_have_attribute("data-allowed", "false")
        expect(target("n1")).to_contain_text("VM 100 is already on n1")
        expect(target("n2")).to_have_attribute("data-allowed", "false")
        expect(target("n2")).to_contain_text("rule apart: VM 101 runs on n2")
        expect(target("n3")).to_have_attribute("data-allowed", "true")
        n3 = next(t for t in lab_console.get("/vms/100/targets")["targets"]
                  if t["node"] == "n3")
        free = n3["free_memory_mb"]
        expect(target("n3")).to_contain_text(
            f"{free / 1024:.1f} GiB" if free >= 1024 else f"{free} MiB")
        expect(target("n3")).to_contain_text(f"{n3['cpus']} cpus")
        expect(target("n2").get_by_role("radio")).to_be_disabled()
        screenshot(page, "vm-migrate")

        target("n3").get_by_role("radio").check()
        dialog.get_by_role("button", name="Migrate to n3").click()
        expect(dialog.get_by_test_id("migrate-progress")).to_be_visible()
        expect(dialog.get_by_test_id("migrate-state")).to_have_text(
            "ok", timeout=MIGRATE_TIMEOUT_MS)
        expect(dialog.get_by_test_id("migrate-done")).to_contain_text("on n3")
        dialog.get_by_role("button", name="Close").click()
        # The page shows the new host without a reload, as the API does.
        expect(node).to_have_text("n3")
        expect(status_of(page)).to_have_text("running", timeout=STATE_TIMEOUT_MS)
        assert page.evaluate("window.__sameDocument") is True
        vm = lab_console.vm(100)
        assert (vm["node"], vm["status"]) == ("n3", "running")
        task = next(t for t in lab_console.get("/tasks?vmid=100")
                    if t["kind"] == "vm.migrate")
        assert task["state"] == "ok" and task["result"]["mode"] == "live", task
        screenshot(page, "vm-page-lab")
    finally:
        with lab_console.api() as api:
            api.delete("/ha/rules/apart")
