"""A store follows the etcd membership while it runs: members that join after it connected
are dialled too, so it still reaches the cluster when the member it started with dies."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.cluster import members
from corral.cluster import store as store_module
from corral.cluster.membership import initial_cluster
from corral.cluster.store import Store
from corral.lab.etcd import EtcdMember, free_port, wait_healthy

pytestmark = pytest.mark.integration


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="corral-members-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def start(member: EtcdMember, cluster: list[tuple[str, str]], state: str,
                procs: list[subprocess.Popen[bytes]]) -> None:
    command = member.command([], state=state, initial_cluster=cluster)  # type: ignore[arg-type]
    procs.append(await asyncio.to_thread(subprocess.Popen, command,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    await asyncio.to_thread(wait_healthy, [member.client_url])


async def test_members_that_join_later_are_dialled(workdir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "MEMBERS_EVERY_SECONDS", 0.5)
    monkeypatch.setattr(store_module, "OLD_CLIENT_GRACE_SECONDS", 0.5)
    first, *later = [EtcdMember(f"m{i}", workdir / f"m{i}", free_port(), free_port())
                     for i in (1, 2, 3)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await start(first, [(first.name, first.peer_url)], "new", procs)
        async with Store([first.client_url], follow_members=True) as store:
            lease = await store.grant_lease(30)  # granted before the switch, renewed after
            for m in later:  # two hosts join while the store runs
                new, membership = await members.add_learner(store, [m.peer_url])
                await start(m, initial_cluster(membership, new.id, m.name), "existing", procs)
                await members.promote(store, new.id)
            for _ in range(40):
                if all(m.client_url in store.endpoints for m in later):
                    break
                await asyncio.sleep(0.25)
            assert store.endpoints == [first.client_url, *(m.client_url for m in later)]
            for _ in range(20):  # the old clients are closed after their grace, and let go
                if len(store._background) == 1:
                    break
                await asyncio.sleep(0.25)
            assert [t.get_name() for t in store._background] == ["etcd-members"]
            procs[0].kill()  # the member this store was given dies
            procs[0].wait(10)
            await store.client.put(b"/corral/after", b"1")
            assert (await store.client.get(b"/corral/after")).value == b"1"
            assert await store.refresh_lease(lease) > 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
