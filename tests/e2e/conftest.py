"""A whole lab cluster (3 etcd members, 3 agents, the API) started the way a user starts it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.lab.layout import spare_base_port
from tests.e2e.labtools import Lab


def _env(root: Path, tiny_images: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "CORRAL_CONFIG": str(root / "client.json"),
        "CORRAL_IMAGES_DIR": str(tiny_images),
        "CORRAL_LAB_DIR": str(root / "lab"),
    }
    env.pop("CORRAL_URL", None)
    env.pop("CORRAL_TOKEN", None)
    return env


@pytest.fixture(scope="module")
def lab(tiny_images: Path) -> Iterator[Lab]:
    """On loopback: the tests reach etcd members at 127.0.0.1. The watchdog gives a killed
    agent time to be restarted by the supervisor (its VM must survive that)."""
    root = Path(tempfile.mkdtemp(prefix="lab-", dir="/tmp"))
    base = spare_base_port()
    lab = Lab(root / "lab", _env(root, tiny_images))
    up = lab.corral("lab", "up", "--nodes", "3", "--vms", "1", "--accel", "tcg", "--no-netns",
                    "--watchdog-timeout", "8", "--base-port", str(base),
                    "--api-port", str(base + 390), timeout=180, check=False)
    try:
        assert up.returncode == 0, f"lab up failed:\n{up.stdout}\n{up.stderr}"
        yield lab
    finally:
        lab.corral("lab", "down", check=False, timeout=120)


LEASE_TTL = 6
WATCHDOG_TIMEOUT = 4


@pytest.fixture(scope="module")
def fault_lab(tiny_images: Path) -> Iterator[Lab]:
    """Hosts in network namespaces with a short lease and watchdog, one tiny VM per host."""
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (make test runs as root)")
    root = Path(tempfile.mkdtemp(prefix="flab-", dir="/tmp"))
    base = spare_base_port()
    lab = Lab(root / "lab", _env(root, tiny_images))
    up = lab.corral("lab", "up", "--nodes", "3", "--vms", "3", "--accel", "tcg", "--netns",
                    "--lease-ttl", str(LEASE_TTL), "--watchdog-timeout", str(WATCHDOG_TIMEOUT),
                    "--base-port", str(base), "--api-port", str(base + 390), timeout=240,
                    check=False)
    try:
        assert up.returncode == 0, f"lab up failed:\n{up.stdout}\n{up.stderr}"
        yield lab
    finally:
        lab.corral("lab", "down", check=False, timeout=120)
