"""Cancelling a bulk job from the console, against the real API and etcd with no manager
running: the job stays waiting, so what the page shows is the cancel's own doing."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Console, log_in

pytestmark = pytest.mark.browser


def test_a_vm_and_then_the_whole_job_are_cancelled_after_asking(console: Console,
                                                                  page: Page) -> None:
    log_in(page, console)
    page.goto(console.url + "/#/node/n1")
    # The suite's first page: a cold browser on a busy machine may take a while to draw it.
    expect(page.get_by_test_id("host-menu")).to_be_visible(timeout=30_000)
    page.get_by_test_id("host-menu").click()
    page.get_by_role("menuitem", name="Bulk shut down…").click()
    dialog = page.get_by_test_id("bulk-dialog")
    expect(dialog.get_by_test_id("bulk-submit")).to_have_text("Shut down 3 VM(s)")
    dialog.get_by_test_id("bulk-submit").click()
    page.get_by_test_id("confirm-ok").click()
    rows = dialog.get_by_test_id("job-vm")
    expect(rows).to_have_count(3)
    expect(dialog.locator('[data-phase="waiting"]')).to_have_count(3)

    dialog.locator('[data-testid="job-vm"][data-vmid="100"]').get_by_role(
        "button", name="Cancel").click()
    expect(page.get_by_test_id("confirm-message")).to_contain_text("Cancel VM 100")
    page.get_by_test_id("confirm-ok").click()
    expect(dialog.locator('[data-testid="job-vm"][data-vmid="100"]')).to_have_attribute(
        "data-phase", "cancelled")
    expect(dialog.locator('[data-phase="waiting"]')).to_have_count(2)

    dialog.get_by_test_id("cancel-job").click()  # declined: nothing is cancelled
    page.get_by_test_id("confirm").get_by_role("button", name="Cancel", exact=True).click()
    expect(dialog.locator('[data-phase="waiting"]')).to_have_count(2)
    dialog.get_by_test_id("cancel-job").click()
    page.get_by_test_id("confirm-ok").click()
    expect(dialog.get_by_test_id("cancel-note")).to_have_text("cancelled: 101, 102")
    expect(dialog.locator('[data-phase="cancelled"]')).to_have_count(3)
    with console.api() as client:
        job = dialog.get_by_test_id("bulk-job").get_attribute("data-id")
        children = client.get("/tasks", params={"parent": job}).json()
    assert sorted(t["vmid"] for t in children if t["vmid"]) == [100, 101, 102]
    assert all(t["result"].get("cancelled") for t in children if t["vmid"])
