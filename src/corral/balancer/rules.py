"""The HA rules as the balancer reads them: per VM, over a map of where VMs are. Pure.

The same meaning as `ha.placement.rule_breach`, on the balancer's plain data: anti-affinity
partners never share a host; an affinity member only moves to where its partners are (so a
group is never split further); a strict node-preference forbids unlisted hosts; a non-strict
one is never made worse (a VM does not move to a host its rules rank below its own).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from corral.ha.models import HARule

EMPTY: Mapping[int, str] = {}


@dataclass
class VmRules:
    apart: list[tuple[str, frozenset[int]]] = field(default_factory=list)  # (rule, partners)
    together: list[tuple[str, frozenset[int]]] = field(default_factory=list)
    prefs: list[HARule] = field(default_factory=list)

    def priority(self, node: str) -> int:
        """The highest priority any preference rule gives node; unlisted hosts rank below
        every listed one."""
        return max((r.nodes.get(node, -1) for r in self.prefs), default=0)

    def breach(self, vmid: int, node: str, where: Mapping[int, str],
               current: str | None = None, leaving: Mapping[int, str] = EMPTY) -> str | None:
        """Which rule vmid would break on node given where the others stay (a migrating
        VM: its target), or None. leaving: where migrating VMs still run until they have
        left. current: its host now, for the non-strict preference (never made worse)."""
        for r in self.prefs:
            if r.strict and node not in r.nodes:
                return f"rule {r.name}: {node} is not among its nodes"
        if current is not None and self.prefs and self.priority(node) < self.priority(current):
            return f"node preference: {node} ranks below {current}"
        for name, partners in self.apart:
            for o in sorted(partners):
                if where.get(o) == node or leaving.get(o) == node:
                    return f"rule {name}: VM {o} runs on {node}"
        for name, partners in self.together:
            hosts = {where[o] for o in partners if o in where}
            if hosts and node not in hosts:
                return f"rule {name}: keeps it with VM {min(partners)} on {sorted(hosts)[0]}"
        return None


def index(rules: Iterable[HARule]) -> dict[int, VmRules]:
    out: dict[int, VmRules] = {}
    for r in sorted(rules, key=lambda r: r.name):
        for v in r.vms:
            entry = out.setdefault(v, VmRules())
            others = frozenset(x for x in r.vms if x != v)
            if r.kind == "anti-affinity":
                entry.apart.append((r.name, others))
            elif r.kind == "affinity":
                entry.together.append((r.name, others))
            else:
                entry.prefs.append(r)
    return out


NO_RULES = VmRules()
