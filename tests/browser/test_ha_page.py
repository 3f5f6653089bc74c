"""The HA page against the seeded cluster of conftest (no agents: the page reads and writes
only the API): hosts' and VMs' HA states as the API reports them, and HA resources and rules
added and removed from the page, each removal asked first."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Console, log_in, screenshot

pytestmark = pytest.mark.browser


def test_the_ha_page_shows_the_api_s_states(page: Page, console: Console) -> None:
    log_in(page, console)
    expect(page.get_by_test_id("link")).to_have_attribute("data-state", "live")
    page.get_by_role("link", name="HA", exact=True).click()
    with console.api() as api:
        report = api.get("/ha/status").json()
    for n in report["nodes"]:
        expect(page.locator(f"[data-testid=ha-host][data-node={n['node']}]")).to_have_attribute(
            "data-status", n["status"])
    for r in report["vms"]:
        row = page.locator(f"[data-testid=ha-vm][data-vmid='{r['vmid']}']")
        expect(row).to_have_attribute("data-status", r["status"])
        if r["reason"]:
            expect(row).to_contain_text(r["reason"])
    screenshot(page, "ha-page")


def test_resources_and_rules_are_added_and_removed_from_the_page(page: Page,
                                                                 console: Console) -> None:
    log_in(page, console)
    expect(page.get_by_test_id("link")).to_have_attribute("data-state", "live")
    page.goto(console.url + "/#/ha")

    add = page.get_by_test_id("ha-add-resource")
    add.get_by_label("VM to add").select_option("105")
    add.get_by_label("max restarts").fill("3")
    add.get_by_role("button", name="Add to HA").click()
    row = page.locator("[data-testid=ha-vm][data-vmid='105']")
    expect(row).to_contain_text("0/3")  # arrived through the stream
    with console.api() as api:
        assert api.get("/ha/resources/105").json()["max_restart"] == 3

    # A rule the API refuses shows its reason and the field it names.
    rule = page.get_by_test_id("ha-add-rule")
    rule.get_by_label("rule name").fill("web-apart")
    rule.get_by_label("rule VMs").fill("100")
    with console.api() as api:
        refused = api.post("/ha/rules", json={"name": "web-apart", "kind": "anti-affinity",
                                              "vms": [100]})
    assert refused.status_code == 422
    rule.get_by_role("button", name="Add rule").click()
    expect(rule.get_by_test_id("action-error")).to_contain_text(
        refused.json()["error"]["message"])
    rule.get_by_label("rule VMs").fill("100, 101")
    rule.get_by_role("button", name="Add rule").click()
    listed = page.locator("[data-testid=ha-rule][data-name=web-apart]")
    expect(listed).to_contain_text("VMs 100, 101 never share a host")

    # Removals ask first.
    listed.get_by_role("button", name="Remove").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text("Remove rule web-apart?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(listed).to_have_count(1)
    listed.get_by_role("button", name="Remove").click()
    dialog.get_by_role("button", name="Remove rule").click()
    expect(listed).to_have_count(0)

    row.get_by_role("button", name="Remove").click()
    dialog.get_by_role("button", name="Remove from HA").click()
    expect(row).to_have_count(0)
    with console.api() as api:
        assert api.get("/ha/resources/105").status_code == 404
        assert [r["name"] for r in api.get("/ha/rules").json()] == []
