"""Migration between two real agents on one real etcd, with real QEMU: live with shared and
local disks (guest-written content and heartbeat continuity), a target dying midway, a cold
move of a stopped VM's local volume, and a target that tells the flip, which lets it run the
guest, from a move by anyone else."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from agents import Cluster, cluster_fixture, wait_for  # noqa: F401  (fixture)

from corral.cluster.models import Disk, Placement, Task, TaskState, VMConfig, VMStatus
from corral.host.ports import PortRange
from corral.host.ports import free_port as spare_port
from corral.host.processes import pid_alive
from corral.migration import record
from corral.migration.net import free_port
from corral.migration.record import MigrationRecord, Phase
from corral.qemu.driver import QemuDriver

pytestmark = pytest.mark.integration


def continuous(before: list[int], after: list[int]) -> None:
    """The guest's counter goes on across the move: no restart, no gap, no repeat."""
    assert before and after, (before, after)
    assert before == list(range(1, len(before) + 1)), before
    assert 1 not in after, f"the guest restarted on the target: {after[:5]}"
    joined = before + [n for n in after if n > before[-1]]
    assert after[0] <= before[-1] + 1, f"gap: source ended at {before[-1]}, target began {after[0]}"
    assert joined == list(range(1, len(joined) + 1)), joined


def qemu_io(path: Path, command: str) -> str:
    # Reads share the image with a running QEMU (-r -U); writes need it unused.
    share = ["-r", "-U"] if command.startswith("read") else []
    out = subprocess.run(["qemu-io", *share, "-f", "qcow2", "-c", command, str(path)],
                         capture_output=True, text=True, check=True)
    assert "failed" not in out.stdout + out.stderr, out.stdout + out.stderr
    return out.stdout


async def qmp_status(driver: QemuDriver, vmid: int, query: str = "query-status") -> str:
    """The `status` of a QMP query's answer (untyped JSON)."""
    return str((await driver.qmp(vmid, query))["status"])


async def running_vm(c: Cluster, cfg: VMConfig, beats: int = 2) -> int:
    assert await c.store.create_vm(cfg, Placement(node="n1"))
    if cfg.disks:
        assert (await c.run("vm.create", cfg.vmid)).state is TaskState.OK
    if any(d.storage == "local" for d in cfg.disks):
        # A pattern the guest never touches: the migrated disk must carry it along.
        qemu_io(c.volume("n1", cfg.disks[0].volume.split(":")[1]), "write -P 0xab 1M 64k")
    started = await c.run("vm.start", cfg.vmid)
    assert started.state is TaskState.OK, started.error

    async def beating() -> bool:
        return len(c.heartbeats("n1", cfg.vmid)) >= beats

    await wait_for(beating, 40, "heartbeats")
    return int(started.result["pid"])


async def test_live_shared_disk_keeps_the_guest_running(c: Cluster) -> None:
    cfg = VMConfig(vmid=300, name="m300", memory_mb=96, cores=1,
                   disks=[Disk(volume="shared:vm-300-disk-0.qcow2", size_mb=32)])
    pid = await running_vm(c, cfg)
    done = await c.run("vm.migrate", 300, target="n2", with_local_disks=False, timeout=90)
    assert done.state is TaskState.OK, (done.error, done.log)
    r = done.result
    assert r["mode"] == "live" and r["ram_bytes"] > 0 and r["downtime_ms"] >= 0
    assert r["total_time_s"] > 0 and "pause_ms" in r
    vm = await c.store.vm(300)
    assert vm is not None and vm.placement.node == "n2" and vm.placement.generation == 1
    assert vm.placement.origin is None and vm.placement.state == "running"
    assert not pid_alive(pid), "the source QEMU still runs"
    assert c.shared("vm-300-disk-0.qcow2").exists()
    assert (await record.read(c.store, 300))[0] is None

    async def beating_on_target() -> bool:
        return len(c.heartbeats("n2", 300)) >= 2

    await wait_for(beating_on_target, 20, "heartbeats on the target")
    continuous(c.heartbeats("n1", 300), c.heartbeats("n2", 300))

    async def reported() -> bool:
        vm = await c.store.vm(300)
        return bool(vm and vm.runtime and vm.runtime.node == "n2"
                    and vm.runtime.status is VMStatus.RUNNING)

    await wait_for(reported, 10, "the target's runtime report")


async def test_live_local_disk_content_survives(c: Cluster) -> None:
    cfg = VMConfig(vmid=301, name="m301", memory_mb=96, cores=1, append="corral.diskmark=1",
                   disks=[Disk(volume="local:vm-301-disk-0.qcow2", size_mb=32)])
    await running_vm(c, cfg)
    refused = await c.run("vm.migrate", 301, target="n2", with_local_disks=False)
    assert refused.state is TaskState.ERROR and "--with-local-disks" in (refused.error or "")
    done = await c.run("vm.migrate", 301, target="n2", with_local_disks=True, timeout=90)
    assert done.state is TaskState.OK, (done.error, done.log)
    assert done.result["disk_bytes"] > 0
    source_vol, target_vol = c.volume("n1", "vm-301-disk-0.qcow2"), c.volume(
        "n2", "vm-301-disk-0.qcow2")
    assert not source_vol.exists() and target_vol.exists()
    before = c.heartbeats("n1", 301)

    async def counting() -> bool:
        return len(c.heartbeats("n2", 301)) >= 2

    await wait_for(counting, 20, "heartbeats on the target")
    continuous(before, c.heartbeats("n2", 301))
    qemu_io(target_vol, "read -P 0xab 1M 64k")  # written before the VM ever ran
    mark = qemu_io(target_vol, "read -v 0 16").split(":", 1)[1].split()
    counter = int(bytes(int(h, 16) for h in mark[:16] if len(h) == 2).split(b"\n")[0])
    assert counter >= before[-1], (counter, before[-1])  # the guest's writes, here and there


async def test_target_dying_midway_leaves_the_vm_on_the_source(c: Cluster) -> None:
    # The bandwidth limit throttles the disk mirror too: a small disk keeps the test short.
    cfg = VMConfig(vmid=302, name="m302", memory_mb=256, cores=1,
                   disks=[Disk(volume="local:vm-302-disk-0.qcow2", size_mb=2)])
    pid = await running_vm(c, cfg)
    task_id = await c.queue("vm.migrate", 302, "n1", target="n2", with_local_disks=True,
                            bwlimit_mbps=1)

    async def sending() -> int | None:
        rec, _ = await record.read(c.store, 302)
        target_pid = (c.agents["n2"].run_dir / "302.pid")
        if rec and rec.phase == "transferring" and rec.stats.ram_transferred and \
                target_pid.exists():
            return int(target_pid.read_text())
        return None

    target_pid = await wait_for(sending, 40, "the RAM transfer")
    os.kill(target_pid, signal.SIGKILL)
    done = await c.wait_task(task_id, 60)
    assert done.state is TaskState.ERROR
    assert "migration failed" in (done.error or "") or "target" in (done.error or ""), done.error
    vm = await c.store.vm(302)
    assert vm is not None and vm.placement.node == "n1" and vm.placement.generation == 0
    assert pid_alive(pid)
    receive = next(t for t in await c.store.tasks() if t.kind == "vm.receive")
    assert receive.state is TaskState.ERROR
    assert not c.volume("n2", "vm-302-disk-0.qcow2").exists()
    assert not (c.agents["n2"].run_dir / "302.pid").exists() or not pid_alive(target_pid)
    assert (await record.read(c.store, 302))[0] is None
    seen = len(c.heartbeats("n1", 302))

    async def still_beating() -> bool:
        return len(c.heartbeats("n1", 302)) > seen

    await wait_for(still_beating, 10, "the guest to carry on on the source")
    assert c.heartbeats("n1", 302).count(1) == 1


async def test_cold_local_disk_and_no_overwrite(c: Cluster) -> None:
    cfg = VMConfig(vmid=303, name="m303", memory_mb=64, cores=1,
                   disks=[Disk(volume="local:vm-303-disk-0.qcow2", size_mb=32)])
    assert await c.store.create_vm(cfg, Placement(node="n1"))
    assert (await c.run("vm.create", 303)).state is TaskState.OK
    source_vol, target_vol = c.volume("n1", "vm-303-disk-0.qcow2"), c.volume(
        "n2", "vm-303-disk-0.qcow2")
    qemu_io(source_vol, "write -P 0xcd 2M 128k")

    target_vol.parent.mkdir(parents=True, exist_ok=True)
    target_vol.write_bytes(b"precious")
    clash = await c.run("vm.migrate", 303, target="n2", with_local_disks=True)
    assert clash.state is TaskState.ERROR and "already exists" in (clash.error or "")
    assert target_vol.read_bytes() == b"precious" and source_vol.exists()
    target_vol.unlink()

    # A manual move, without an origin: with origin n1 (a maintenance move) the manager sends
    # the VM back home as soon as n1 is not in maintenance, and that return migration creates
    # the volume on n1 again, racing the checks below.
    done = await c.run("vm.migrate", 303, target="n2", with_local_disks=True)
    assert done.state is TaskState.OK, (done.error, done.log)
    assert done.result["mode"] == "cold"
    assert done.result["removed"] == [str(source_vol.resolve())]
    await asyncio.sleep(3)  # a few manager rounds: nothing may move the VM on
    vm = await c.store.vm(303)
    assert vm is not None and vm.placement.node == "n2" and vm.placement.origin is None
    assert vm.placement.generation == 1
    assert not source_vol.exists()
    qemu_io(target_vol, "read -P 0xcd 2M 128k")


async def test_source_agent_restart_after_ram_sent_resumes_the_vm_here(
    c: Cluster, short_tmp: Path, tiny_images: Path
) -> None:
    """The source agent dies after QEMU sent the RAM but before the placement flipped: the
    guest sits paused on the source. Its next agent must resume it there (the target may not
    run it without the flip) and end the migration record."""
    cfg = VMConfig(vmid=305, name="m305", memory_mb=96, cores=1)
    pid = await running_vm(c, cfg)
    # A bare receiving QEMU stands in for a target whose agent will give up.
    sink = QemuDriver(short_tmp / "sink", tiny_images, "tcg")
    uri = f"tcp:127.0.0.1:{free_port('127.0.0.1')}"
    await sink.start(cfg, [], incoming=uri)
    await sink.qmp(305, "stop")  # like the real target: never runs before the flip
    try:
        src = c.agents["n1"]
        src.kill(signal.SIGKILL)
        assert await record.replace(c.store, MigrationRecord(
            vmid=305, task="gone", receive_task="gone-too", source="n1", target="n2",
            mode="live", phase=Phase.TRANSFERRING), 0)
        driver = QemuDriver(src.run_dir, tiny_images, "tcg")
        await driver.qmp(305, "migrate", {"uri": uri})

        async def sent() -> bool:
            return await qmp_status(driver, 305) == "postmigrate"

        await wait_for(sent, 30, "the RAM transfer")
        frozen = len(c.heartbeats("n1", 305))
        src.start()

        async def resumed() -> bool:
            return await qmp_status(driver, 305) == "running"

        await wait_for(resumed, 30, "the source to resume the guest")
        assert driver.pid(305) == pid
        rec, _ = await record.read(c.store, 305)
        assert rec is not None and rec.phase == "aborted"
        await wait_for(lambda: _more_on(c, "n1", 305, frozen), 15, "heartbeats on the source")
        vm = await c.store.vm(305)
        assert vm is not None and vm.placement.node == "n1"
    finally:
        await sink.stop(305)


async def test_source_agent_restart_with_the_vm_recovered_back_boots_afresh(
    c: Cluster, short_tmp: Path, tiny_images: Path
) -> None:
    """The flip gave the VM to n2, which ran it and was lost; HA recovered the VM back onto
    n1, where the source's paused copy is still there when n1's agent restarts. That copy is
    from the past: the agent must stop it and boot the VM afresh, never resume it."""
    cfg = VMConfig(vmid=310, name="m310", memory_mb=96, cores=1)
    pid = await running_vm(c, cfg)
    sink = QemuDriver(short_tmp / "sink", tiny_images, "tcg")
    uri = f"tcp:127.0.0.1:{free_port('127.0.0.1')}"
    await sink.start(cfg, [], incoming=uri)
    await sink.qmp(310, "stop")
    try:
        src = c.agents["n1"]
        src.kill(signal.SIGKILL)
        assert await record.replace(c.store, MigrationRecord(
            vmid=310, task="mig-310", receive_task="rx-310", source="n1", target="n2",
            mode="live", phase=Phase.COMPLETED, source_generation=0), 0)
        driver = QemuDriver(src.run_dir, tiny_images, "tcg")
        await driver.qmp(310, "migrate", {"uri": uri})

        async def sent() -> bool:
            return await qmp_status(driver, 310) == "postmigrate"

        await wait_for(sent, 30, "the RAM transfer")
        vm = await c.store.vm(310)
        assert vm is not None
        # Flipped to n2 (generation 1), then recovered back here by HA (generation 2).
        back = vm.placement.model_copy(update={"generation": 2, "moved_by": None})
        assert await c.store.set_placement(310, back, vm.placement_rev)
        src.start()

        async def booted_afresh() -> int | None:
            new = driver.pid(310)
            return new if new is not None and new != pid and c.heartbeats("n1", 310) else None

        await wait_for(booted_afresh, 40, "a fresh boot on n1")
        assert not pid_alive(pid), "the stale copy was kept"
        assert c.heartbeats("n1", 310)[0] == 1
    finally:
        await sink.stop(310)


async def test_target_agent_restart_after_the_flip_finishes_the_switchover(
    c: Cluster, tiny_images: Path
) -> None:
    """The target agent dies after the placement flipped but before it resumed the guest:
    its next agent owns a paused guest with all its state and must let it run."""
    cfg = VMConfig(vmid=306, name="m306", memory_mb=96, cores=1)
    await running_vm(c, cfg)
    dst = c.agents["n2"]
    dst.kill(signal.SIGKILL)
    # What the target had set up: an incoming QEMU in its run dir, never resumed.
    target = QemuDriver(dst.run_dir, tiny_images, "tcg")
    uri = f"tcp:127.0.0.1:{free_port('127.0.0.1')}"
    await target.start(cfg, [], incoming=uri)
    await target.qmp(306, "stop")
    source = QemuDriver(c.agents["n1"].run_dir, tiny_images, "tcg")
    await source.qmp(306, "migrate", {"uri": uri})

    async def sent() -> bool:
        return await qmp_status(source, 306, "query-migrate") == "completed"

    await wait_for(sent, 30, "the RAM transfer")
    vm = await c.store.vm(306)
    assert vm is not None
    flipped = vm.placement.model_copy(update={"node": "n2", "generation": 1})
    assert await c.store.set_placement(306, flipped, vm.placement_rev)
    assert await record.replace(c.store, MigrationRecord(
        vmid=306, task="t", receive_task="r", source="n1", target="n2", mode="live",
        phase=Phase.COMPLETED), 0)
    dst.start()

    async def running_on_target() -> bool:
        return await qmp_status(target, 306) == "running"

    await wait_for(running_on_target, 30, "the target to resume the guest")
    first = c.heartbeats("n2", 306)
    await wait_for(lambda: _more_on(c, "n2", 306, len(first)), 15, "heartbeats on the target")
    await source.stop(306)


async def test_a_vm_moved_to_the_target_by_someone_else_is_not_run_from_the_incoming_qemu(
    c: Cluster
) -> None:
    """The source host is lost mid-migration (its agent frozen, its QEMU fenced) and HA
    recovers the VM onto the very host that waits for the stream. The incoming QEMU never got
    the go: the receive must end and stop it rather than wait for a verdict that cannot come,
    so the recovery's start boots the guest afresh instead of finding a paused copy of it."""
    cfg = VMConfig(vmid=307, name="m307", memory_mb=96, cores=1)
    source_pid = await running_vm(c, cfg)
    task_id = await c.queue("vm.migrate", 307, "n1", target="n2", with_local_disks=False,
                            bwlimit_mbps=1)
    incoming = c.agents["n2"].run_dir / "307.pid"

    async def transferring() -> int | None:
        rec, _ = await record.read(c.store, 307)
        ready = rec is not None and rec.phase == "transferring" and incoming.exists()
        return int(incoming.read_text()) if ready else None

    target_pid = await wait_for(transferring, 40, "the transfer")
    source_agent = c.agents["n1"].proc
    assert source_agent is not None
    source_agent.send_signal(signal.SIGSTOP)
    # Its host is fenced; frozen rather than killed, so the stream stalls without an end the
    # incoming QEMU would notice on its own.
    os.kill(source_pid, signal.SIGSTOP)
    try:
        vm = await c.store.vm(307)
        assert vm is not None
        recovered = vm.placement.model_copy(update={
            "node": "n2", "generation": vm.placement.generation + 1, "moved_by": None})
        assert await c.store.set_placement(307, recovered, vm.placement_rev)

        async def receive_ended() -> Task | None:
            rx = next((t for t in await c.store.tasks() if t.kind == "vm.receive"), None)
            return rx if rx is not None and rx.state.finished else None

        rx = await wait_for(receive_ended, 15, "the receive to give up")
        assert rx.state is TaskState.ERROR
        assert "by something other than this migration" in (rx.error or ""), rx.error
        assert not pid_alive(target_pid), "the incoming QEMU was kept"
        vm = await c.store.vm(307)
        assert vm is not None and vm.placement == recovered
        # What HA's start then does there: a fresh boot, its counter from 1 again.
        started = await c.run("vm.start", 307, "n2")
        assert started.state is TaskState.OK, started.error
        await wait_for(lambda: _more_on(c, "n2", 307, 0), 40, "heartbeats on n2")
        assert c.heartbeats("n2", 307)[0] == 1
    finally:
        os.kill(source_pid, signal.SIGKILL)
        source_agent.send_signal(signal.SIGCONT)
    done = await c.wait_task(task_id, 60)
    assert done.state is TaskState.ERROR  # its flip found the VM gone from its host


@pytest.mark.parametrize("record_removed", [False, True], ids=["unannounced", "record-removed"])
async def test_the_target_runs_the_guest_on_the_flip_the_source_did_not_announce(
    c: Cluster, tiny_images: Path, record_removed: bool
) -> None:
    """The source is cut off between the placement flip and the record's `completed`, or the
    target saw neither before the source gave up waiting and removed the record: the flip
    alone gives the VM to the target, which takes over."""
    cfg = VMConfig(vmid=308, name="m308", memory_mb=96, cores=1)
    await running_vm(c, cfg)
    # The source's part played by the test: a migrate task that never ends, its record, and
    # the target's real receive task.
    parent = Task(id="mig-308", kind="vm.migrate", node="n1", vmid=308,
                  state=TaskState.RUNNING)
    await c.store.put_task(parent)
    assert await record.replace(c.store, MigrationRecord(
        vmid=308, task=parent.id, receive_task="rx-308", source="n1", target="n2",
        mode="live"), 0)
    await c.store.put_task(Task(id="rx-308", kind="vm.receive", node="n2", vmid=308,
                                parent=parent.id, params={"source": "n1"}))

    async def ready() -> str | None:
        rec, _ = await record.read(c.store, 308)
        return rec.migrate_uri if rec is not None and rec.phase == "ready" else None

    uri = await wait_for(ready, 30, "the target to be ready")
    source = QemuDriver(c.agents["n1"].run_dir, tiny_images, "tcg")
    try:
        await source.qmp(308, "migrate", {"uri": uri})

        async def sent() -> bool:
            return await qmp_status(source, 308, "query-migrate") == "completed"

        await wait_for(sent, 30, "the RAM transfer")
        before = c.heartbeats("n1", 308)
        vm = await c.store.vm(308)
        assert vm is not None
        flipped = vm.placement.model_copy(update={
            "node": "n2", "generation": vm.placement.generation + 1, "moved_by": parent.id})
        assert await c.store.set_placement(308, flipped, vm.placement_rev)
        if record_removed:
            await c.store.client.delete(record.key(308).encode())
        rx = await c.wait_task("rx-308", 15)
        assert rx.state is TaskState.OK, rx.error
        target = QemuDriver(c.agents["n2"].run_dir, tiny_images, "tcg")
        assert await qmp_status(target, 308) == "running"
        await wait_for(lambda: _more_on(c, "n2", 308, 1), 20, "heartbeats on the target")
        continuous(before, c.heartbeats("n2", 308))
    finally:
        await source.stop(308)


async def test_a_resume_refuses_a_source_copy_whose_guest_was_handed_on(
    c: Cluster, short_tmp: Path, tiny_images: Path
) -> None:
    """A QEMU that sent its guest away (`postmigrate`) must never run it again: `cont` would
    run the guest from the past against a disk that went on elsewhere. `vm resume` refuses
    it and says to start the VM instead."""
    cfg = VMConfig(vmid=309, name="m309", memory_mb=96, cores=1)
    await running_vm(c, cfg)
    sink = QemuDriver(short_tmp / "sink", tiny_images, "tcg")
    uri = f"tcp:127.0.0.1:{free_port('127.0.0.1')}"
    await sink.start(cfg, [], incoming=uri)
    source = QemuDriver(c.agents["n1"].run_dir, tiny_images, "tcg")
    try:
        await sink.qmp(309, "stop")
        await source.qmp(309, "migrate", {"uri": uri})

        async def sent() -> bool:
            return await qmp_status(source, 309) == "postmigrate"

        await wait_for(sent, 30, "the RAM transfer")
        refused = await c.run("vm.resume", 309, "n1")
        assert refused.state is TaskState.ERROR
        assert "left by a migration (postmigrate)" in (refused.error or ""), refused.error
        assert await qmp_status(source, 309) == "postmigrate"
    finally:
        await sink.stop(309)


async def _more_on(c: Cluster, node: str, vmid: int, than: int) -> bool:
    return len(c.heartbeats(node, vmid)) > than


async def test_the_target_listens_only_within_its_migration_port_range(c: Cluster) -> None:
    low = spare_port()
    ports = PortRange(low, low + 9)
    n2 = c.agents["n2"]
    n2.stop()
    n2.argv += ["--migration-ports", str(ports)]
    n2.start()
    cfg = VMConfig(vmid=311, name="m311", memory_mb=96, cores=1,
                   disks=[Disk(volume="local:vm-311-disk-0.qcow2", size_mb=32)])
    await running_vm(c, cfg)
    seen: set[int] = set()  # the ports the target published for the RAM stream and NBD

    async def watch() -> None:
        while True:
            rec, _ = await record.read(c.store, 311)
            if rec is not None and rec.migrate_uri:
                seen.add(int(rec.migrate_uri.rsplit(":", 1)[1]))
                seen.update(e.port for e in rec.nbd)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        done = await c.run("vm.migrate", 311, target="n2", with_local_disks=True, timeout=90)
    finally:
        watcher.cancel()
    assert done.state is TaskState.OK, (done.error, done.log)
    assert len(seen) == 2 and all(p in ports for p in seen), (seen, str(ports))

    async def beating_on_target() -> bool:
        return len(c.heartbeats("n2", 311)) >= 2

    await wait_for(beating_on_target, 20, "heartbeats on the target")


async def test_a_target_whose_migration_ports_are_all_taken_refuses_and_the_vm_stays(
        c: Cluster) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        n2 = c.agents["n2"]
        n2.stop()
        n2.argv += ["--migration-ports", f"{port}-{port}"]
        n2.start()
        cfg = VMConfig(vmid=312, name="m312", memory_mb=96, cores=1,
                       disks=[Disk(volume="shared:vm-312-disk-0.qcow2", size_mb=32)])
        pid = await running_vm(c, cfg)
        done = await c.run("vm.migrate", 312, target="n2", with_local_disks=False, timeout=90)
    assert done.state is TaskState.ERROR
    assert f"no free port in the migration range {port}-{port}" in (done.error or ""), done.log
    vm = await c.store.vm(312)
    assert vm is not None and vm.placement.node == "n1" and pid_alive(pid)
    beats = len(c.heartbeats("n1", 312))

    async def still_beating() -> bool:
        return len(c.heartbeats("n1", 312)) > beats

    await wait_for(still_beating, 20, "the guest to go on beating on its source")
    assert not list(c.agents["n2"].run_dir.glob("312.pid")) or not pid_alive(
        int((c.agents["n2"].run_dir / "312.pid").read_text().strip()))
