"""The console in a real Chromium: login, the dashboard's figures against the API's own
answers, the tree's filter, the themes, live updates, and a token refused mid-session."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from corral.cluster import keys
from corral.cluster.models import VMRuntime, VMStatus
from corral.cluster.store import Store, token_digest
from tests.browser.conftest import TOKEN, UI_TIMEOUT_MS, Console, in_etcd, log_in, screenshot

pytestmark = pytest.mark.browser

ACTIVE = {"running", "paused", "starting", "shutting-down"}


def api_state(console: Console) -> dict[str, Any]:
    with console.api() as api:
        return {k: api.get(path).json() for k, path in
                [("nodes", "/nodes"), ("vms", "/vms"), ("ha", "/ha/status")]}


def expected_figures(state: dict[str, Any]) -> dict[str, float]:
    """What the dashboard must show, from the API's answers (the dashboard's definitions:
    docs/web.md)."""
    nodes, vms = state["nodes"], state["vms"]
    online = [n for n in nodes if n["online"]]
    placeable = [n for n in online if not n["maintenance"]]
    active = [vm for vm in vms if vm["status"] in ACTIVE]

    def memory(n: dict[str, Any]) -> int:
        return int(n["memory_mb"])

    def spare(total: Callable[[dict[str, Any]], float], allocated: float) -> float:
        sizes = [total(n) for n in placeable]
        return sum(sizes) - max(sizes) - allocated

    def disk(n: dict[str, Any], part: str) -> int:
        return int((n["usage"] or {}).get(f"disk_{part}_mb") or 0)

    disks_allocated = sum(d["size_mb"] for vm in vms for d in vm["disks"])
    mem_allocated = sum(vm["memory_mb"] for vm in active)
    cpu_allocated = sum(vm["cores"] for vm in active)
    return {
        "hosts-online": len(placeable),
        "hosts-maintenance": len([n for n in online if n["maintenance"]]),
        "hosts-offline": len(nodes) - len(online),
        "vms-running": len([vm for vm in vms if vm["status"] == "running"]),
        "vms-paused": len([vm for vm in vms if vm["status"] == "paused"]),
        "vms-stopped": len([vm for vm in vms if vm["status"] == "stopped"]),
        "vms-ha-error": len([r for r in state["ha"]["vms"] if r["status"] == "error"]),
        "memory-physical": sum(memory(n) for n in online),
        "memory-used": sum(n["usage"]["memory_used_mb"] for n in online),
        "memory-allocated": mem_allocated,
        "memory-spare": spare(memory, mem_allocated),
        "cpu-physical": sum(n["cpus"] for n in online),
        "cpu-used": sum(n["usage"]["cpu"] * n["cpus"] for n in online),
        "cpu-allocated": cpu_allocated,
        "cpu-spare": spare(lambda n: n["cpus"], cpu_allocated),
        # Storage: what the agents report of their disks; every VM's disks, whatever its state.
        "storage-physical": sum(disk(n, "total") for n in online),
        "storage-used": sum(disk(n, "used") for n in online),
        "storage-allocated": disks_allocated,
        "storage-spare": spare(lambda n: disk(n, "total"), disks_allocated),
    }


def gib(mb: int) -> str:
    return f"{mb / 1024:.1f} GiB"  # every host's figure here is over 1 GiB


def test_a_bad_token_is_refused_with_the_api_s_reason(page: Page, console: Console) -> None:
    with console.api("not-a-token") as api:
        refusal = api.get("/nodes")
    assert refusal.status_code == 401
    reason = refusal.json()["error"]["message"]
    log_in(page, console, "not-a-token")
    error = page.get_by_test_id("login-error")
    expect(error).to_contain_text(reason)
    expect(error).to_contain_text("unauthorized")
    expect(page.get_by_test_id("hosts-online")).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('corral.token')") is None
    screenshot(page, "login-refused")


def test_the_dashboard_shows_the_api_s_figures(page: Page, console: Console) -> None:
    log_in(page, console)
    expect(page.get_by_test_id("gauges")).to_be_visible()
    expect(page.get_by_test_id("task-row")).to_have_count(3)
    expect(page.get_by_test_id("quorum")).to_have_text("yes")  # one healthy etcd voter
    want = expected_figures(api_state(console))
    # The seed covers every case: each figure is one the dashboard could get wrong.
    assert all(want[k] > 0 for k in ("hosts-maintenance", "hosts-offline", "vms-paused",
                                     "vms-ha-error"))
    assert want["cpu-allocated"] > want["cpu-physical"]  # overcommit
    for figure in ("hosts-online", "hosts-maintenance", "hosts-offline", "vms-running",
                   "vms-paused", "vms-stopped", "vms-ha-error"):
        expect(page.get_by_test_id(figure)).to_have_text(str(want[figure]))
    assert want["storage-allocated"] > 0 and want["storage-physical"] > 0
    for gauge in ("memory", "cpu", "storage"):
        for part in ("physical", "used", "allocated", "spare"):
            key = f"{gauge}-{part}"
            shown = page.get_by_test_id(key).get_attribute("data-value")
            assert shown is not None and float(shown) == pytest.approx(want[key]), key
    expect(page.get_by_test_id("cpu-allocated")).to_contain_text("overcommit")
    # n4's agent does not report its disk: the gauge says it leaves it out.
    expect(page.get_by_test_id("storage-note")).to_have_text(
        "1 of 3 online hosts do not report their disk space")
    nodes = api_state(console)["nodes"]
    expect(page.get_by_test_id("host-row")).to_have_count(len(nodes))
    for n in nodes:
        row = page.locator(f'[data-testid=host-row][data-name="{n["name"]}"]')
        expect(row).to_contain_text(f'{n["vms_running"]} / {n["vms"]}')
        if n["usage"]:
            u = n["usage"]
            expect(row).to_contain_text(f'{round(u["cpu"] * 100)}% of {n["cpus"]}')
            expect(row).to_contain_text(f'{gib(u["memory_used_mb"])} / {gib(n["memory_mb"])}')
    assert page.evaluate("sessionStorage.getItem('corral.token')") == TOKEN
    screenshot(page, "dashboard")


def tree_vms(page: Page) -> list[int]:
    return [int(v) for v in page.get_by_test_id("tree-vm").evaluate_all(
        "els => els.map(e => e.dataset.vmid)")]


def test_the_tree_filters_by_name_host_and_state(page: Page, console: Console) -> None:
    log_in(page, console)
    vms = {vm["vmid"]: vm for vm in api_state(console)["vms"]}
    expect(page.get_by_test_id("tree-vm")).to_have_count(len(vms))
    search = page.get_by_label("filter the tree")
    cases = {
        "db1": [vmid for vmid, vm in vms.items() if "db1" in vm["name"]],
        "n4": [vmid for vmid, vm in vms.items() if vm["node"] == "n4"],
        "paused": [vmid for vmid, vm in vms.items() if vm["status"] == "paused"],
        "n1 running": [vmid for vmid, vm in vms.items()
                       if vm["node"] == "n1" and vm["status"] == "running"],
    }
    for query, want in cases.items():
        assert want, query
        search.fill(query)
        expect(page.get_by_test_id("tree-vm")).to_have_count(len(want))
        assert tree_vms(page) == sorted(want), query
    search.fill("no-such-thing")
    expect(page.get_by_test_id("tree-host")).to_have_count(0)
    expect(page.get_by_text("nothing matches")).to_be_visible()
    search.fill("db1")
    page.get_by_test_id("tree-vm").first.click()
    expect(page.get_by_test_id("vm-page")).to_contain_text("VM 102 · db1")
    expect(page.locator("[data-testid=vm-page] dd[data-field=node]")).to_have_text(
        vms[102]["node"])
    screenshot(page, "vm-page")
    page.locator("[data-testid=tree-host][data-name=n1] > a").click()
    expect(page.get_by_test_id("node-page")).to_contain_text("Host n1")


def test_the_dark_theme_toggles_and_stays(page: Page, console: Console) -> None:
    log_in(page, console)
    expect(page.get_by_test_id("gauges")).to_be_visible()
    background = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    page.get_by_test_id("theme-toggle").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    dark = page.evaluate(background)
    assert dark != light
    screenshot(page, "dashboard-dark")
    page.reload()
    expect(page.get_by_test_id("gauges")).to_be_visible()
    assert page.evaluate(background) == dark  # the pick outlives a reload
    page.get_by_test_id("theme-toggle").click()
    assert page.evaluate(background) == light


@pytest.mark.parametrize("width,height", [(820, 1180), (768, 1024)])
def test_a_tablet_shows_the_dashboard_without_sideways_scrolling(
        page: Page, console: Console, width: int, height: int) -> None:
    page.set_viewport_size({"width": width, "height": height})
    log_in(page, console)
    expect(page.get_by_test_id("gauges")).to_be_visible()
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    # Nor inside: no card or table is wider than the room it has.
    clipped = page.locator(".card, .table-wrap").evaluate_all(
        "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.className)")
    assert clipped == []
    screenshot(page, "dashboard-tablet" if width == 820 else f"dashboard-tablet-{width}")


def test_changes_show_without_a_reload(page: Page, console: Console) -> None:
    log_in(page, console)
    stopped = page.get_by_test_id("vms-stopped")
    before = expected_figures(api_state(console))
    expect(stopped).to_have_text(str(before["vms-stopped"]))

    async def stop_web1(store: Store) -> None:
        assert await store.put_runtime(100, VMRuntime(node="n1", status=VMStatus.STOPPED))

    async def start_web1(store: Store) -> None:
        assert await store.put_runtime(100, VMRuntime(node="n1", status=VMStatus.RUNNING,
                                                      pid=1100))

    events = page.get_by_test_id("event-row")
    expect(page.get_by_test_id("card-events")).to_contain_text("Nothing has changed")
    in_etcd(console.etcd, stop_web1)
    try:
        expect(stopped).to_have_text(str(before["vms-stopped"] + 1))
        expect(page.get_by_test_id("vms-running")).to_have_text(
            str(before["vms-running"] - 1))
        # The change is told in the recent events, and leads to the VM.
        expect(events.first).to_contain_text("VM 100 web1: running → stopped")
    finally:
        in_etcd(console.etcd, start_web1)
    expect(stopped).to_have_text(str(before["vms-stopped"]))
    expect(events.first).to_contain_text("VM 100 web1: stopped → running")
    expect(events).to_have_count(2)
    events.nth(1).get_by_role("link").click()
    expect(page.get_by_test_id("vm-page")).to_contain_text("VM 100 · web1")


def test_a_token_revoked_mid_session_ends_it_with_the_reason(page: Page,
                                                             console: Console) -> None:
    other = "revoked-later-token"

    async def add(store: Store) -> None:
        await store.add_token(other)

    async def revoke(store: Store) -> None:
        await store.client.delete(keys.token(token_digest(other)).encode())

    in_etcd(console.etcd, add)
    log_in(page, console, other)
    expect(page.get_by_test_id("gauges")).to_be_visible()
    in_etcd(console.etcd, revoke)
    # The API caches a valid token for 5 s; the console reads the cluster's status every 10 s
    # (the events stream, open since sign-in, asks for no token again).
    expect(page.get_by_test_id("login-error")).to_contain_text("invalid token",
                                                               timeout=20_000)
    assert page.evaluate("sessionStorage.getItem('corral.token')") is None


def test_api_errors_are_shown_with_their_reason(page: Page, console: Console) -> None:
    """The API's error body reaches the operator. The failures are made in the browser's
    network layer (the real API has no switch to fail these reads on demand)."""
    def fail(code: str, message: str, status: int) -> Any:
        body = json.dumps({"error": {"code": code, "message": message, "field": None}})
        return lambda route: route.fulfill(status=status, body=body,
                                           content_type="application/json")

    page.route("**/api/v1/ha/status",
               fail("store_unavailable", "the cluster store is unavailable: timeout", 503))
    page.route("**/api/v1/cluster/status",
               fail("no_quorum", "etcd has no quorum: 1 of 3 voters answer", 503))
    log_in(page, console)
    banner = page.get_by_test_id("api-error")
    expect(banner).to_have_count(1)
    expect(banner).to_contain_text("GET /api/v1/ha/status")
    expect(banner).to_contain_text("store_unavailable: the cluster store is unavailable: timeout")
    expect(page.get_by_test_id("cluster-unavailable")).to_contain_text(
        "etcd has no quorum: 1 of 3 voters answer")
    # The rest of the dashboard still works.
    want = expected_figures(api_state(console))
    expect(page.get_by_test_id("hosts-online")).to_have_text(str(want["hosts-online"]))
    page.unroute("**/api/v1/ha/status")
    # The next read that answers clears it: a failed list is read again 2 s later, then 4 s...
    expect(banner).to_have_count(0, timeout=UI_TIMEOUT_MS)
