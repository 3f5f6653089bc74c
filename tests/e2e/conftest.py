"""Whole lab clusters (3 etcd members, 3 agents, the API) started the way a user starts one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.labtools import Lab, running_lab

# The lab's defaults, which real hosts get too: a 4 s watchdog under a 6 s lease was seen to
# fence a healthy host when a renewal stalled behind an etcd election on a saturated machine.
LEASE_TTL = 9
WATCHDOG_TIMEOUT = 6
# Hosts in network namespaces: fault injection and HA.
FAULT_LAB_ARGS = ("--netns", "--lease-ttl", str(LEASE_TTL),
                  "--watchdog-timeout", str(WATCHDOG_TIMEOUT))


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (make test runs as root)")


@pytest.fixture(scope="module")
def lab(tiny_images: Path) -> Iterator[Lab]:
    """On loopback: the tests reach etcd members at 127.0.0.1. The watchdog gives a killed
    agent time to be restarted by the supervisor (its VM must survive that)."""
    with running_lab(tiny_images, "lab-", "--vms", "1", "--no-netns",
                     "--watchdog-timeout", "8") as lab:
        yield lab


@pytest.fixture(scope="module")
def fault_lab(tiny_images: Path) -> Iterator[Lab]:
    """One tiny VM per host."""
    need_root()
    with running_lab(tiny_images, "flab-", "--vms", "3", *FAULT_LAB_ARGS) as lab:
        yield lab
