"""Who the cluster takes back with `corral cluster rejoin`: only a recorded host, by the CN of
its verified certificate, and only while its etcd member is not in the member list."""

from __future__ import annotations

import pytest

from corral.cluster.membership import Member
from corral.cluster.models import ClusterHost, HostRole
from corral.setup.rejoin_rules import host_of, leftovers, rejoin_refusal


def member(i: int, name: str) -> Member:
    return Member(i, name, (f"https://10.0.0.{i}:2380",), (f"https://10.0.0.{i}:2379",), False)


def host(i: int, name: str, member_id: int | None, role: HostRole = "host") -> ClusterHost:
    return ClusterHost(name=name, role=role, address=f"10.0.0.{i}", member_id=member_id,
                       peer_urls=[f"https://10.0.0.{i}:2380"],
                       client_urls=[f"https://10.0.0.{i}:2379"])


HOSTS = {"n1": host(1, "n1", 1), "n2": host(2, "n2", 2), "w": host(3, "w", 3, "witness")}
REBUILT = [member(1, "n1")]  # after `expected 1` on n1


def test_a_dropped_host_and_a_dropped_witness_may_rejoin() -> None:
    assert rejoin_refusal("n2", HOSTS, REBUILT) is None
    assert rejoin_refusal("witness-w", HOSTS, REBUILT) is None
    assert host_of("witness-w", HOSTS) == HOSTS["w"]
    assert host_of("w", HOSTS) is None  # a witness's certificate is named witness-<name>


@pytest.mark.parametrize(("cn", "members", "kind", "says"), [
    (None, REBUILT, "forbidden", "none was shown"),
    ("root", REBUILT, "forbidden", "names no host"),
    ("n9", REBUILT, "forbidden", "names no host"),
    ("n1", REBUILT, "conflict", "still a member"),
    # Another member sits at its peer URL (it rejoined already, under a new id).
    ("n2", [*REBUILT, Member(7, "n2", ("https://10.0.0.2:2380",),
                              ("https://10.0.0.2:2379",), True)],
     "conflict", "already has its name or peer URL"),
])
def test_refused_with_the_reason(cn: str | None, members: list[Member], kind: str,
                                 says: str) -> None:
    refusal = rejoin_refusal(cn, HOSTS, members)
    assert refusal is not None and refusal.kind == kind and says in refusal.message, refusal


def test_a_member_an_earlier_attempt_added_and_never_started_is_its_own() -> None:
    half = Member(8, "", ("https://10.0.0.2:2380",), (), True)
    assert rejoin_refusal("n2", HOSTS, [*REBUILT, half]) is None
    assert leftovers(HOSTS["n2"], [*REBUILT, half]) == [half]
    assert leftovers(HOSTS["n2"], REBUILT) == []
