"""The balancer's planner on plain data: it moves load off a busy host, and never against a
rule, a host's capacity, a host that takes no VMs, an opt-out, a cooldown, the ping-pong
guard or the concurrency limit; a plan made earlier is re-checked before each move."""

from __future__ import annotations

import random
from dataclasses import replace

from corral.balancer.model import (
    BalanceConfig,
    BalanceInput,
    HostLoad,
    PastMove,
    Plan,
    VmLoad,
)
from corral.balancer.planner import place, plan, still_valid
from corral.ha.models import HARule

NOW = 100_000.0
CONFIG = BalanceConfig(enabled=True)


def host(name: str, cpus: int = 16, memory_mb: int = 65536, accepts: bool = True,
         why_not: str = "") -> HostLoad:
    return HostLoad(name, cpus, memory_mb, accepts, why_not)


def vm(vmid: int, node: str, cpu: float = 1.5, cores: int = 4, memory_mb: int = 4096,
       **kw: object) -> VmLoad:
    series = tuple(cpu * (1 + 0.02 * ((i * 7) % 5 - 2)) for i in range(15))
    return VmLoad(vmid, node, cores, memory_mb, series, memory_mb * 0.75, 10.0,
                  **kw)  # type: ignore[arg-type]


def busy(n: int = 8, node: str = "a") -> list[VmLoad]:
    """n VMs on one host, the others empty: a clear case for moves."""
    return [vm(100 + i, node, cpu=1.5 + 0.1 * i) for i in range(n)]


def inp(hosts: list[HostLoad], vms: list[VmLoad], **kw: object) -> BalanceInput:
    return BalanceInput(NOW, 60.0, tuple(hosts), tuple(vms), **kw)  # type: ignore[arg-type]


THREE = [host("a"), host("b"), host("c")]


def after(p: Plan, vms: list[VmLoad]) -> dict[int, str]:
    where = {v.vmid: v.node for v in vms}
    for m in p.moves:
        where[m.vmid] = m.target
    return where


def test_load_moves_off_the_busy_host_to_the_idle_ones_and_each_move_is_explained() -> None:
    vms = busy()
    p = plan(inp(THREE, vms), CONFIG)
    assert p.moves
    assert all(m.source == "a" and m.target in ("b", "c") for m in p.moves)
    assert p.moves[-1].imbalance_after < p.moves[0].imbalance_before
    for m in p.moves:
        assert m.gain > 0 and m.cost_s > 0 and "VM" in m.reason
    assert len(p.moves) <= min(CONFIG.max_moves_per_round, CONFIG.max_concurrent)


def test_a_balanced_cluster_gets_no_move() -> None:
    vms = [vm(100 + i, n) for i, n in enumerate("abcabcabc")]
    p = plan(inp(THREE, vms), CONFIG)
    assert p.moves == ()
    assert "nothing to do" in p.notes[0]


def test_a_nearly_idle_cluster_is_left_alone_and_a_busy_one_is_not() -> None:
    # Two idle VMs on a and one on b: a at 2 % CPU and 4 % memory, b at 1 % and 2 %, c empty.
    # Relative to their mean the hosts differ a lot; moving a VM between them serves no one.
    idle = [vm(100, "a", cpu=0.16, memory_mb=1600), vm(101, "a", cpu=0.16, memory_mb=1600),
            vm(102, "b", cpu=0.16, memory_mb=1600)]
    p = plan(inp(THREE, idle), CONFIG)
    assert p.moves == () and "nothing to do" in p.notes[0]
    # The same VMs busy (a at 38 % CPU, b at 19 %): a moves.
    busy_ones = [replace(v, cpu=tuple(c * 19 for c in v.cpu)) for v in idle]
    assert [m.source for m in plan(inp(THREE, busy_ones), CONFIG).moves] == ["a"]


def test_a_spread_over_many_hosts_is_evened_as_on_a_few() -> None:
    # Half the hosts run five VMs, half three. One move evens a pair of hosts: on 8 hosts
    # that is a quarter of the spread, on 64 a thirty-second, yet it is worth as much.
    for n in (8, 64):
        hosts = [host(f"h{i:02}") for i in range(n)]
        vms = [vm(1000 + 10 * i + k, f"h{i:02}", cpu=2.0)
               for i in range(n) for k in range(5 if i % 2 == 0 else 3)]
        p = plan(inp(hosts, vms), CONFIG)
        assert len(p.moves) == CONFIG.max_moves_per_round, (n, p.notes)
        for m in p.moves:
            assert int(m.source[1:]) % 2 == 0 and int(m.target[1:]) % 2 == 1


def test_anti_affinity_partners_never_share_a_host() -> None:
    # 107, the busiest VM on a, has a partner on b, and c takes no VMs: b is its only way
    # out, and the rule closes it.
    rule = HARule(name="apart", kind="anti-affinity", vms=[107, 300])
    vms = [*busy(), vm(300, "b", cpu=0.1)]
    hosts = [host("a"), host("b"), host("c", accepts=False, why_not="is in maintenance")]
    p = plan(inp(hosts, vms, rules=(rule,)), CONFIG)
    assert p.moves, "the other VMs still move"
    assert 107 not in {m.vmid for m in p.moves}
    assert "rule apart" in p.held[107]
    # Over random placements, the rule holds after every plan.
    rnd = random.Random(1)
    for _ in range(30):
        vms = [vm(100 + i, rnd.choice("aab"), cpu=rnd.uniform(0.2, 3)) for i in range(12)]
        rule = HARule(name="apart", kind="anti-affinity", vms=[100, 101, 102])
        vms = [replace(v, node=n) if v.vmid in (100, 101, 102) else v
               for v, n in zip(vms, ["a", "b", "c", *["a"] * 9], strict=True)]
        where = after(plan(inp(THREE, vms, rules=(rule,)), CONFIG), vms)
        assert len({where[100], where[101], where[102]}) == 3


def test_an_affinity_group_is_never_split_further() -> None:
    together = HARule(name="pair", kind="affinity", vms=[106, 107])
    p = plan(inp(THREE, busy(), rules=(together,)), CONFIG)
    assert p.moves
    moved = {m.vmid for m in p.moves}
    assert not moved & {106, 107}
    assert "rule pair" in p.held[107]
    # A member away from its group only moves to where the group is.
    vms = [*busy(), vm(300, "b", cpu=0.1)]
    rule = HARule(name="pair", kind="affinity", vms=[107, 300])
    p = plan(inp(THREE, vms, rules=(rule,)), CONFIG)
    assert all(m.target == "b" for m in p.moves if m.vmid == 107)


def test_strict_node_preference_forbids_other_hosts_and_soft_ones_are_not_made_worse() -> None:
    strict = HARule(name="only", kind="node-preference", vms=[107], nodes={"a": 1, "c": 1},
                    strict=True)
    hosts = [host("a"), host("b"), host("c", accepts=False, why_not="is offline")]
    p = plan(inp(hosts, busy(), rules=(strict,)), CONFIG)
    assert p.moves
    assert 107 not in {m.vmid for m in p.moves}
    assert "rule only" in p.held[107]
    soft = HARule(name="prefer", kind="node-preference", vms=[107], nodes={"a": 2, "b": 1})
    p = plan(inp(THREE, busy(), rules=(soft,)), CONFIG)
    assert all(m.target != "c" for m in p.moves if m.vmid == 107)


def test_memory_is_never_overfilled_and_the_vcpu_limit_holds() -> None:
    # b has room for one 4 GiB VM next to the reserve; c for none.
    hosts = [host("a"), host("b", memory_mb=4096 + 512 + 1000), host("c", memory_mb=4000)]
    p = plan(inp(hosts, busy()), CONFIG)
    assert [m.target for m in p.moves] == ["b"]
    assert "not enough free memory on c" in " ".join(p.held.values())
    # Overcommit: b has 2 CPUs and 1 vCPU per CPU allowed, the VMs have 4 cores each.
    config = CONFIG.model_copy(update={"cpu_overcommit": 1.0})
    hosts = [host("a", cpus=64), host("b", cpus=2), host("c", accepts=False)]
    p = plan(inp(hosts, busy()), config)
    assert p.moves == ()
    rnd = random.Random(2)
    for _ in range(30):
        hosts = [host(n, memory_mb=rnd.choice((8192, 16384, 32768))) for n in "abc"]
        vms = [vm(100 + i, rnd.choice("aab"), cpu=rnd.uniform(0.2, 3),
                  memory_mb=rnd.choice((1024, 2048, 4096))) for i in range(12)]
        p = plan(inp(hosts, vms), CONFIG)
        # A move's source keeps the memory until it ends: count VMs on both ends.
        for h in hosts:
            held = sum(v.memory_mb for v in vms if v.node == h.name)
            held += sum(next(v.memory_mb for v in vms if v.vmid == m.vmid)
                        for m in p.moves if m.target == h.name)
            assert held + CONFIG.memory_reserve_mb <= max(
                h.memory_mb, CONFIG.memory_reserve_mb + sum(
                    v.memory_mb for v in vms if v.node == h.name))


def test_hosts_that_take_no_vms_are_never_targets_and_their_vms_stay() -> None:
    hosts = [host("a"), host("b", accepts=False, why_not="is in maintenance"), host("c"),
             host("d", accepts=False, why_not="is offline")]
    vms = [*busy(), *busy(6, "d")]
    vms = [replace(v, vmid=v.vmid + 100) if v.node == "d" else v for v in vms]
    p = plan(inp(hosts, vms), CONFIG)
    assert p.moves
    assert {m.target for m in p.moves} == {"c"}
    assert all(m.source == "a" for m in p.moves)
    assert "its host d is offline" in p.held[200]


def test_an_opted_out_vm_never_moves() -> None:
    vms = [replace(v, movable=False, why_fixed="opted out") if v.vmid >= 104 else v
           for v in busy()]
    p = plan(inp(THREE, vms), CONFIG)
    assert p.moves
    assert all(m.vmid < 104 for m in p.moves)
    assert p.held[107] == "opted out"


def test_nothing_moves_while_max_concurrent_migrations_run_and_a_round_is_bounded() -> None:
    p = plan(inp(THREE, busy(), migrations_running=4), CONFIG)
    assert p.moves == ()
    assert "max_concurrent" in p.notes[0]
    assert len(plan(inp(THREE, busy(), migrations_running=3), CONFIG).moves) == 1
    config = CONFIG.model_copy(update={"max_moves_per_round": 2, "max_concurrent": 10})
    assert len(plan(inp(THREE, busy()), config).moves) == 2


def test_a_vm_moved_recently_waits_for_its_cooldown() -> None:
    first = plan(inp(THREE, busy()), CONFIG).moves[0].vmid
    recent = (PastMove(first, "c", "a", NOW - 100),)
    p = plan(inp(THREE, busy(), history=recent), CONFIG)
    assert first not in {m.vmid for m in p.moves}
    assert p.held[first].startswith("cooldown")
    # After the cooldown, it may move again (to a host it did not leave).
    old = (PastMove(first, "c", "a", NOW - CONFIG.cooldown_s - 1),)
    p = plan(inp(THREE, busy(), history=old), CONFIG)
    assert any(m.vmid == first and m.target == "b" for m in p.moves)


def test_the_ping_pong_guard_keeps_a_vm_from_returning_to_a_host_it_left() -> None:
    # Every VM left b a while ago (after its cooldown, within the guard): only c is open.
    left = tuple(PastMove(v.vmid, "b", "a", NOW - CONFIG.cooldown_s - 60) for v in busy())
    p = plan(inp(THREE, busy(), history=left), CONFIG)
    assert p.moves
    assert {m.target for m in p.moves} == {"c"}
    # With c closed, nothing goes anywhere, and the reason says why.
    hosts = [host("a"), host("b"), host("c", accepts=False)]
    p = plan(inp(hosts, busy(), history=left), CONFIG)
    assert p.moves == ()
    assert "ping-pong" in p.held[107]
    # Long after, the guard is lifted.
    gone = tuple(replace(m, at=NOW - CONFIG.cooldown_s * CONFIG.pingpong_factor - 1)
                 for m in left)
    assert plan(inp(hosts, busy(), history=gone), CONFIG).moves
    # Within one plan no two moves go opposite ways between two hosts: here CPU-heavy VMs
    # would go a -> b and memory-heavy ones b -> a.
    cpu_heavy = [VmLoad(100 + i, "a", 4, 2048, (3.0,) * 15, 1000.0, 1.0) for i in range(6)]
    mem_heavy = [VmLoad(200 + i, "b", 1, 16384, (0.1,) * 15, 15000.0, 1.0) for i in range(4)]
    two = [host("a", memory_mb=131072), host("b", memory_mb=131072)]
    p = plan(inp(two, cpu_heavy + mem_heavy),
             CONFIG.model_copy(update={"max_concurrent": 20, "max_moves_per_round": 20}))
    assert p.moves
    pairs = {(m.source, m.target) for m in p.moves}
    assert not any((t, s) in pairs for s, t in pairs)
    assert "a move the other way is planned" in p.held[200]


def test_the_plan_is_the_same_whatever_the_input_order() -> None:
    rnd = random.Random(3)
    vms = [vm(100 + i, rnd.choice("aab"), cpu=rnd.uniform(0.2, 3)) for i in range(20)]
    rules = (HARule(name="x", kind="anti-affinity", vms=[100, 101]),
             HARule(name="y", kind="affinity", vms=[102, 103]))
    base = plan(inp(THREE, vms, rules=rules), CONFIG)
    for _ in range(5):
        shuffled = vms[:]
        rnd.shuffle(shuffled)
        hosts = THREE[:]
        rnd.shuffle(hosts)
        assert plan(inp(hosts, shuffled, rules=rules[::-1]), CONFIG) == base


def test_a_planned_move_is_checked_again_before_it_starts() -> None:
    vms = busy()
    p = plan(inp(THREE, vms), CONFIG)
    m = p.moves[0]
    assert still_valid(m, inp(THREE, vms), CONFIG) is None
    # Its target died since.
    dead = [h if h.name != m.target else replace(h, accepts=False, why_not="is offline")
            for h in THREE]
    assert still_valid(m, inp(dead, vms), CONFIG) == f"node {m.target} is offline"
    # Its source died: the balancer leaves its VMs to HA.
    gone = [h if h.name != "a" else replace(h, accepts=False, why_not="is offline")
            for h in THREE]
    assert "its host a is offline" in (still_valid(m, inp(gone, vms), CONFIG) or "")
    # It moved elsewhere meanwhile.
    moved = [replace(v, node="c") if v.vmid == m.vmid else v for v in vms]
    assert "is on c now" in (still_valid(m, inp(THREE, moved), CONFIG) or "")
    # A rule appeared that forbids the target.
    rule = HARule(name="stay", kind="node-preference", vms=[m.vmid], nodes={"a": 1},
                  strict=True)
    assert "rule stay" in (still_valid(m, inp(THREE, vms, rules=(rule,)), CONFIG) or "")
    # Enough migrations started meanwhile.
    assert "migrations running" in (
        still_valid(m, inp(THREE, vms, migrations_running=4), CONFIG) or "")
    # The target filled up.
    full = [*vms, vm(999, m.target, memory_mb=65536 - 512 - 1024)]
    assert "not enough free memory" in (still_valid(m, inp(THREE, full), CONFIG) or "")


def test_place_picks_the_least_loaded_host_that_fits_and_keeps_the_rules() -> None:
    vms = [*busy(4, "a"), *[replace(v, vmid=v.vmid + 100, node="b") for v in busy(2)]]
    new = vm(500, "", cpu=1.0)
    assert place(inp(THREE, vms), CONFIG, new) == ("c", "")
    apart = HARule(name="apart", kind="anti-affinity", vms=[500, 999])
    with_partner = [*vms, vm(999, "c", cpu=0.1)]
    assert place(inp(THREE, with_partner, rules=(apart,)), CONFIG, new) == ("b", "")
    hosts = [host("a", memory_mb=2048), host("b", accepts=False, why_not="is offline")]
    target, why = place(inp(hosts, []), CONFIG, new)
    assert target is None
    assert "not enough free memory on a" in why and "node b is offline" in why
