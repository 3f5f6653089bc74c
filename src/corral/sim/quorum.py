"""Store quorum in the simulator, as pure functions of who is up and who reaches whom.

etcd answers a host only when that host reaches a majority of the voters: its own member
counts while the host runs (a host cut from the network still reaches its local member), the
others count when both ends are up, both have their store link and both are on the same side
of a partition. A witness is a voter like any other. A member removed by the override
(`expected 1`) is no voter: it is answered by nobody until it rejoins."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    """One machine as the store network sees it (a host or a witness)."""

    up: bool  # powered: its etcd member (if it is a voter) runs
    linked: bool  # its link to the other machines' etcd (cut-store, net-off cut it)
    side: int = 0  # its side of a partition (0: every machine a partition did not name)


@dataclass(frozen=True)
class Membership:
    """The store's members: the voters, the machines the override removed, and the epoch
    (one more at each override: a new cluster from the survivor's data)."""

    voters: frozenset[str]
    out: frozenset[str] = frozenset()
    epoch: int = 1


def reaches(name: str, machines: Mapping[str, Member]) -> frozenset[str]:
    """The machines whose etcd member `name` reaches: itself while it runs, and every running
    machine it has a link with."""
    me = machines[name]
    if not me.up:
        return frozenset()
    return frozenset({name} | {
        other for other, m in machines.items()
        if me.linked and m.up and m.linked and m.side == me.side})


def majority(voters: Iterable[str], reached: Iterable[str]) -> bool:
    """More than half of the voters are among the reached ones."""
    voters = frozenset(voters)
    return 2 * len(voters & frozenset(reached)) > len(voters)


def answers(name: str, members: Membership, machines: Mapping[str, Member]) -> bool:
    """The store answers this machine: it is not removed and reaches a majority of the
    voters."""
    return name not in members.out and majority(members.voters, reaches(name, machines))


def sides(members: Membership, machines: Mapping[str, Member]) -> list[frozenset[str]]:
    """The running voters grouped by who reaches whom, largest first (ties by name)."""
    found: list[frozenset[str]] = []
    for name in sorted(members.voters):
        if name in machines and not any(name in s for s in found):
            group = reaches(name, machines) & members.voters
            if group:
                found.append(group)
    return sorted(found, key=lambda s: (-len(s), sorted(s)))


def has_quorum(members: Membership, machines: Mapping[str, Member]) -> bool:
    """Some side holds a majority of the voters (there can be only one)."""
    return any(majority(members.voters, s) for s in sides(members, machines))


def names(group: Iterable[str]) -> str:
    return ", ".join(sorted(group))
