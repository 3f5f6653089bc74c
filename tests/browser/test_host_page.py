"""The host page on a real lab cluster (3 hosts, their agents and manager, real QEMU tiny
guests, the lab's HTTPS API): from a host's menu a bulk shutdown and a bulk start change the
VMs' states, a destructive action asks first, and maintenance moves the VMs away with its
progress shown and brings them back when disabled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from corral.cli.client import pinned
from tests.browser.conftest import VIEWPORT, screenshot
from tests.e2e.labtools import Lab, running_lab, wait_until

pytestmark = pytest.mark.browser

HOST = "n2"
# The tiny guest ignores the power button: a shutdown is a hard stop after this many seconds.
FORCE_AFTER = "3"
# A live migration of a tiny guest under TCG takes a few seconds on this 2-core machine.
MOVE_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def lab(tiny_images: Path) -> Iterator[Lab]:
    """Two running tiny VMs on n2 (and none elsewhere): the host page's subjects."""
    with running_lab(tiny_images, "lab-hostpage-", "--vms", "0", "--no-netns",
                     "--watchdog-timeout", "8") as lab:
        for name in ("hp1", "hp2"):
            lab.corral("vm", "create", "--name", name, "--memory", "96", "--cores", "1",
                       "--node", HOST)
        for vmid in vmids(lab):
            lab.corral("vm", "start", str(vmid))
        wait_until(lambda: all(v["status"] == "running" for v in lab.json("vm", "list")),
                   90, "the VMs to run")
        yield lab


def vmids(lab: Lab) -> list[int]:
    return sorted(int(v["vmid"]) for v in lab.json("vm", "list"))


def config(lab: Lab) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(Path(lab.env["CORRAL_CONFIG"]).read_text())
    return found


def api(lab: Lab) -> httpx.Client:
    c = config(lab)
    return httpx.Client(base_url=f"{c['url']}/api/v1",
                        verify=pinned(Path(c["ca"]) if c.get("ca") else None),
                        headers={"Authorization": f"Bearer {c['token']}"}, timeout=10)


@pytest.fixture
def page(browser: Browser, lab: Lab) -> Iterator[Page]:
    """Signed in to the lab's console (its certificate is the lab CA's, which this browser
    does not know)."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light",
                                  ignore_https_errors=True)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    c = config(lab)
    pg.goto(c["url"] + "/")
    pg.get_by_label("API token").fill(c["token"])
    pg.get_by_role("button", name="Sign in").click()
    expect(pg.get_by_test_id("hosts-online")).to_have_text("3")
    try:
        yield pg
    finally:
        context.close()
    # An API answer with an error status (the usage history's 404) is the page's to show.
    assert not [e for e in errors if not e.startswith("Failed to load resource: the server "
                                                      "responded with a status of")], errors


def open_host(page: Page) -> None:
    page.locator(f'[data-testid="tree-host"][data-name="{HOST}"] > a').click()  # the tree
    expect(page.get_by_test_id("host-status")).to_be_visible()


def host_vms(page: Page, status: str, count: int, timeout: float = MOVE_TIMEOUT_MS) -> None:
    expect(page.locator(f'[data-testid="host-vm"][data-status="{status}"]')).to_have_count(
        count, timeout=timeout)


def menu(page: Page, item: str) -> None:
    page.get_by_test_id("host-menu").click()
    page.get_by_role("menuitem", name=item).click()


def test_bulk_shutdown_asks_first_then_bulk_start_from_the_host_menu(page: Page,
                                                                       lab: Lab) -> None:
    screenshot(page, "lab-dashboard")
    open_host(page)
    host_vms(page, "running", 2)
    # The agent's disk figures, as its usage sample has them (the total does not move).
    with api(lab) as http:
        usage = http.get(f"/nodes/{HOST}").json()["usage"]
    expect(page.locator("[data-testid=host-status] dd[data-field=disk]")).to_contain_text(
        f"of {usage['disk_total_mb'] / 1024:.1f} GiB used (data directory)")
    screenshot(page, "host-page")

    menu(page, "Bulk shut down…")
    dialog = page.get_by_test_id("bulk-dialog")
    dialog.get_by_label("Force stop after (s)").fill(FORCE_AFTER)
    expect(dialog.get_by_test_id("bulk-submit")).to_have_text("Shut down 2 VM(s)")
    dialog.get_by_test_id("bulk-submit").click()
    # It asks first; declining sends nothing.
    confirm = page.get_by_test_id("confirm")
    expect(confirm.get_by_test_id("confirm-message")).to_contain_text("Shut down 2 VM(s) on n2")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_have_count(0)
    with api(lab) as client:
        assert client.get("/tasks", params={"kind": "node.bulk"}).json() == []
    dialog.get_by_test_id("bulk-submit").click()
    page.get_by_test_id("confirm-ok").click()
    job = dialog.get_by_test_id("bulk-job")
    expect(job).to_have_attribute("data-state", "ok", timeout=90_000)
    expect(job.locator('[data-testid="job-vm"][data-phase="ok"]')).to_have_count(2)
    host_vms(page, "stopped", 2, 30_000)
    dialog.get_by_role("button", name="Close", exact=True).click()

    menu(page, "Bulk start…")
    dialog = page.get_by_test_id("bulk-dialog")
    expect(dialog.get_by_test_id("bulk-submit")).to_have_text("Start 2 VM(s)")
    dialog.get_by_test_id("bulk-submit").click()  # starting destroys nothing: no question
    expect(dialog.get_by_test_id("bulk-job")).to_have_attribute("data-state", "ok",
                                                                 timeout=90_000)
    host_vms(page, "running", 2, 30_000)
    dialog.get_by_role("button", name="Close", exact=True).click()
    # The dock lists the jobs; a click opens one's log.
    page.locator('[data-testid="dock-task"]', has_text="node.bulk").first.click()
    expect(page.get_by_test_id("task-log")).to_contain_text("done: 2 ok")


def test_maintenance_moves_the_vms_away_and_back(page: Page, lab: Lab) -> None:
    home = vmids(lab)
    open_host(page)
    host_vms(page, "running", 2)
    menu(page, "Maintenance (off)…")
    dialog = page.get_by_test_id("maintenance-dialog")
    expect(dialog.get_by_test_id("maintenance-state")).to_have_attribute("data-state", "off")
    # A refused request shows the API's reason, naming the field, and changes nothing.
    dialog.get_by_label("migrations at once").fill("99")
    dialog.get_by_test_id("maintenance-enable").click()
    page.get_by_test_id("confirm-ok").click()
    expect(dialog.get_by_test_id("action-error")).to_contain_text("(field parallel)")
    expect(dialog.get_by_test_id("maintenance-state")).to_have_attribute("data-state", "off")
    dialog.get_by_label("migrations at once").fill("")
    dialog.get_by_test_id("maintenance-enable").click()
    expect(page.get_by_test_id("confirm-message")).to_contain_text("Enable maintenance on n2")
    page.get_by_test_id("confirm-ok").click()

    # The evacuation as it goes: each VM of the host listed, then moved away.
    expect(dialog.get_by_test_id("evacuation-label")).to_contain_text("of 2 VM(s) moved away")
    screenshot(page, "maintenance-dialog")
    expect(dialog.get_by_test_id("maintenance-state")).to_have_attribute(
        "data-state", "in-maintenance", timeout=MOVE_TIMEOUT_MS)
    expect(dialog.get_by_test_id("evacuation-label")).to_have_text("2 of 2 VM(s) moved away")
    expect(dialog.locator('[data-testid="maintenance-vm"][data-phase="moved away"]')
           ).to_have_count(2)
    expect(page.get_by_test_id("host-vm")).to_have_count(0)
    with api(lab) as client:
        where = {v["vmid"]: (v["node"], v["status"]) for v in client.get("/vms").json()}
    assert all(where[v][0] != HOST and where[v][1] == "running" for v in home), where

    dialog.get_by_test_id("maintenance-disable").click()
    expect(page.get_by_test_id("confirm-message")).to_contain_text("Its VMs move back to it")
    page.get_by_test_id("confirm-ok").click()
    expect(dialog.get_by_test_id("maintenance-state")).to_have_attribute(
        "data-state", "off", timeout=MOVE_TIMEOUT_MS)
    host_vms(page, "running", 2, MOVE_TIMEOUT_MS)
    dialog.get_by_role("button", name="Close", exact=True).click()
    expect(page.get_by_test_id("host-state")).to_have_text("online")
