"""Shared fixtures: a real etcd for integration tests, a connected Store; and which tests
share a worker when the suite runs on several (pytest-xdist, `make test`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from corral.cluster.store import Store
from corral.cluster.view import ClusterView
from corral.lab.etcd import EtcdMember, free_port, wait_healthy

# Tests that start lab clusters or lab hosts run one after another, on one worker: a lab takes
# a random block of ports and a /24 that it checks free only as it starts.
LAB_GROUP = "labs"
LAB_MODULES = frozenset({
    "tests/browser/test_host_page.py",
    "tests/browser/test_vm_page.py",
    "tests/integration/test_lab_host_services.py",
    "tests/integration/test_lab_supervisor.py",
})
# Lab clusters under injected faults, whose fencing and recovery timings (a 6 s watchdog, a
# bound on the time to a recovered VM's first heartbeat) hold on a machine they have to
# themselves: marked `solo`, they run after the others, with nothing beside them (Makefile).
# Beside a second worker, one recovery took 49 s against its bound of 37.
SOLO_MODULES = frozenset(f"tests/e2e/test_{name}_e2e.py" for name in (
    "cluster", "faults", "ha", "override", "quorum", "records"))


def module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = module_of(item)
        if module in SOLO_MODULES:
            item.add_marker(pytest.mark.solo)
        elif module.startswith("tests/e2e/") or module in LAB_MODULES:
            item.add_marker(pytest.mark.xdist_group(LAB_GROUP))


@pytest.fixture(scope="session")
def etcd_endpoint() -> Iterator[str]:
    """One real single-member etcd for the whole session; tests wipe /corral/ between them."""
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: run `make test`, which installs it")
    data = Path(tempfile.mkdtemp(prefix="corral-etcd-"))
    member = EtcdMember("t1", data / "t1", free_port(), free_port())
    proc = subprocess.Popen(
        member.command([member]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_healthy([member.client_url])
        yield member.client_url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
async def store(etcd_endpoint: str) -> AsyncIterator[Store]:
    async with Store([etcd_endpoint]) as s:
        await s.client.delete_prefix(b"/corral/")
        yield s


@pytest.fixture
async def cluster_view(store: Store) -> AsyncIterator[ClusterView]:
    """A watch-fed view of the test's store (what the API and the manager read from)."""
    async with ClusterView(store) as view:
        yield view


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary path: unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="c-", dir=os.environ.get("CORRAL_SHORT_TMP", "/tmp")))
    yield path
    if not os.environ.get("CORRAL_KEEP_TMP"):  # kept for a look at the agents' logs
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_images() -> Path:
    """The tiny guest, built once (make test builds it into $CORRAL_IMAGES_DIR beforehand)."""
    from corral.image.tiny import build_tiny

    images = Path(os.environ.get("CORRAL_IMAGES_DIR", "/var/lib/corral/images"))
    build_tiny(images)
    return images
