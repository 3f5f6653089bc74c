"""The balancer's page against the seeded cluster of conftest (no agents): the plan the API
makes, with each move's reason and each VM left where it is, turning automatic balancing on
and off, and applying a plan after a confirmation (its migrations queued, with their tasks)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from corral.balancer.store import BalanceStatus, MoveRecord, put_status
from corral.cluster import keys
from corral.cluster.models import RecentUsage, Series, VmRecent
from corral.cluster.records import dump
from corral.cluster.store import Store
from tests.browser.conftest import Console, in_etcd, log_in, screenshot

pytestmark = pytest.mark.browser


def recent(demand: dict[int, float], other_cores: float = 0.0) -> RecentUsage:
    flat: Series = [0.1] * 10
    return RecentUsage(step_seconds=60, last_at=1e9, cpu_avg=flat, cpu_max=flat,
                       memory_used_mib=[500] * 10, other_cores=[other_cores] * 10,
                       vms={v: VmRecent(cores_avg=[c] * 10, cores_max=[c] * 10, memory_mib=200)
                            for v, c in demand.items()})


async def busy_n1(store: Store) -> None:
    """n1 (8 CPUs) is hot: VMs 100 and 101 at their full 2 and 1 cores, and 4.5 cores of
    other work; n4 (2 CPUs) runs VM 105 at 0.1 core. VM 101 is the one worth moving."""
    await store.client.put(keys.node("n1", "recent").encode(),
                           dump(recent({100: 2.0, 101: 1.0}, other_cores=4.5)))
    await store.client.put(keys.node("n4", "recent").encode(), dump(recent({105: 0.1})))


async def last_round(store: Store) -> None:
    """The manager's last round, as it records it."""
    await put_status(store, BalanceStatus(
        at=1_700_000_000.0, imbalance=0.42, notes=["imbalance 0.420 -> 0.300 with 1 moves"],
        moves=[MoveRecord(vmid=100, source="n1", target="n4", reason="n1 at CPU 95 %",
                          gain=0.1, cost_s=12.0, task="t-balance-100")]))


def migrations(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in tasks if t["kind"] == "vm.migrate"]


def test_the_plan_is_shown_turned_on_and_off_and_applied(page: Page, console: Console) -> None:
    in_etcd(console.etcd, busy_n1)
    with console.api() as api:
        planned = api.get("/balance/plan").json()
    assert [(m["vmid"], m["target"]) for m in planned["moves"]] == [(101, "n4")], planned

    log_in(page, console)
    expect(page.get_by_test_id("link")).to_have_attribute("data-state", "live")
    page.get_by_role("link", name="Balance", exact=True).click()
    status = page.get_by_test_id("balance-status")
    expect(status).to_have_attribute("data-enabled", "false")
    move = page.locator("[data-testid=balance-move][data-vmid='101']")
    expect(move).to_have_attribute("data-target", "n4")
    expect(move).to_contain_text(planned["moves"][0]["reason"])
    held = page.get_by_test_id("balance-held")
    held.locator("summary").click()
    for vmid, why in planned["held"].items():
        expect(held.locator(f"[data-testid=balance-held-vm][data-vmid='{vmid}']")
               ).to_contain_text(why)
    screenshot(page, "balance-page")

    status.get_by_role("button", name="Turn on").click()
    expect(status).to_have_attribute("data-enabled", "true")
    with console.api() as api:
        assert api.get("/balance").json()["config"]["enabled"] is True
    status.get_by_role("button", name="Turn off").click()
    expect(status).to_have_attribute("data-enabled", "false")
    with console.api() as api:
        assert api.get("/balance").json()["config"]["enabled"] is False

    # Applying asks first; Cancel queues nothing.
    page.get_by_role("button", name="Apply this plan").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text("Start 1 live migration?")
    expect(dialog).to_contain_text("VM 101 n1 → n4")
    dialog.get_by_role("button", name="Cancel").click()
    with console.api() as api:
        assert migrations(api.get("/tasks", params={"vmid": 101}).json()) == []
    page.get_by_role("button", name="Apply this plan").click()
    dialog.get_by_role("button", name="Migrate").click()
    expect(dialog).to_have_count(0)
    with console.api() as api:
        tasks = migrations(api.get("/tasks", params={"vmid": 101}).json())
    assert [t["node"] for t in tasks] == ["n1"]
    expect(move.locator("code")).to_have_text(tasks[0]["id"])


def test_the_last_round_is_shown(page: Page, console: Console) -> None:
    in_etcd(console.etcd, last_round)
    log_in(page, console)
    page.goto(console.url + "/#/balance")
    last = page.get_by_test_id("balance-last-round")
    expect(last).to_contain_text("Imbalance 0.420; 1 move:")
    done = last.locator("[data-testid=balance-done][data-vmid='100']")
    expect(done).to_contain_text("n1 at CPU 95 %")
    expect(done).to_contain_text("about 12 s")
    expect(done.locator("code")).to_have_text("t-balance-100")
