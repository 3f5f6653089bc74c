"""The load balancer on a lab, through the CLI: VMs that burn CPU all start on one host; the
balancer spreads them with live migrations, `plan` names the moves before they happen, an
opted-out VM never moves, and once the cluster is even the balancer stays quiet."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.labtools import Lab, running_lab, wait_until

pytestmark = pytest.mark.e2e

# Short windows so a test sees a round within a couple of minutes; the defaults are minutes.
SETTINGS = ("interval_s=10", "window_s=120", "horizon_s=120", "cooldown_s=1800",
            "max_moves_per_round=4", "max_concurrent=2")
QUIET_SECONDS = 25  # two rounds and more


@pytest.fixture(scope="module")
def lab(tiny_images: Path) -> Iterator[Lab]:
    with running_lab(tiny_images, "blab-", "--vms", "0", "--no-netns") as lab:
        yield lab


def vms(lab: Lab) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in lab.json("vm", "list")}


def create(lab: Lab, name: str, *flags: str) -> int:
    lab.corral("vm", "create", "--name", name, "--memory", "96", "--cores", "1", "--node",
               "n1", "--append", "corral.burn=1", *flags)
    vmid = int(vms(lab)[name]["vmid"])
    lab.corral("vm", "start", str(vmid))
    return vmid


def migrations(lab: Lab) -> list[dict[str, Any]]:
    return [t for t in lab.json("task", "list") if t["kind"] == "vm.migrate"]


def test_burning_vms_are_spread_then_left_alone(lab: Lab) -> None:
    lab.corral("balance", "config", "set", *SETTINGS)
    movable = {create(lab, "burn-a"), create(lab, "burn-b")}
    fixed = create(lab, "burn-pinned", "--no-balance")

    # Once the hosts have published the guests' demand, the plan moves the two movable
    # burners off n1 (one to each other host) and says why the pinned one stays.
    def planned() -> dict[str, Any] | None:
        plan: dict[str, Any] = lab.json("balance", "plan")
        return plan if {m["vmid"] for m in plan["moves"]} == movable else None

    plan = wait_until(planned, 180, "a plan that moves both movable burners")
    assert {m["source"] for m in plan["moves"]} == {"n1"}
    assert {m["target"] for m in plan["moves"]} == {"n2", "n3"}
    assert "opted out" in plan["held"][str(fixed)]
    assert not migrations(lab), "a plan queues nothing"

    lab.corral("balance", "enable")

    def spread() -> bool:
        now = vms(lab)
        homes = {now[n]["node"] for n in ("burn-a", "burn-b")}
        return homes == {"n2", "n3"} and all(
            now[n]["status"] == "running" for n in ("burn-a", "burn-b", "burn-pinned"))

    wait_until(spread, 240, "the burners to be spread and running")
    status: dict[str, Any] = lab.json("balance", "status")
    assert status["config"]["enabled"]
    done = migrations(lab)
    assert {t["vmid"] for t in done} == movable, done
    assert all(t["state"] == "ok" for t in done), done
    for t in done:
        log = "\n".join(lab.json("task", "show", t["id"])["log"])
        assert "why: load balancing: n1 at CPU" in log, log

    # Even now: rounds go on and move nothing; the pinned VM never left n1.
    before = {t["id"] for t in migrations(lab)}
    deadline = time.monotonic() + QUIET_SECONDS
    while time.monotonic() < deadline:
        assert vms(lab)["burn-pinned"]["node"] == "n1"
        time.sleep(3)
    assert {t["id"] for t in migrations(lab)} == before
    last = lab.json("balance", "status")["last_round"]
    assert last is not None and not last["moves"]
    assert time.time() - last["at"] < 30, "rounds still run"
    lab.corral("balance", "disable")
