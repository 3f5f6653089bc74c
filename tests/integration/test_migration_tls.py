"""Migration streams over TLS, with real QEMUs: RAM and an NBD disk export go through with the
certificates of the cluster CA, and a sender without TLS or with a certificate of another CA
gets nothing through."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from qemu_fixtures import kill_all_qemu, qemu_run_dir, tiny_images
from tls_certs import make_ca, make_host_cert

from corral.agent.context import TaskFailed
from corral.cluster.models import Disk, VMConfig
from corral.migration import cold, qmp
from corral.migration.net import free_port
from corral.migration.record import NbdEndpoint
from corral.pki.files import TLSFiles
from corral.qemu import tls
from corral.qemu.driver import QemuDriver, QemuError

pytestmark = pytest.mark.integration
__all__ = ["qemu_run_dir", "tiny_images"]  # fixtures used by name
VMID = 311


def host_files(root: Path, ca: tuple[object, object], name: str) -> TLSFiles:
    files = TLSFiles(root / "ca.crt", root / f"{name}.crt", root / f"{name}.key")
    make_host_cert(ca, name, files.cert, files.key)  # type: ignore[arg-type]
    return files


@pytest.fixture
def run_dir(qemu_run_dir: Path) -> Iterator[Path]:
    """The run directory of this test's two hosts, src/ and dst/ in qemu_run_dir: their
    QEMUs are killed after the test (qemu_run_dir's own clean-up looks only at its top)."""
    yield qemu_run_dir
    for host in ("src", "dst"):
        kill_all_qemu(qemu_run_dir / host)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, TLSFiles]:
    ca = make_ca(tmp_path / "ca.crt", tmp_path / "ca.key")
    rogue_dir = tmp_path / "rogue"
    rogue_ca = make_ca(rogue_dir / "ca.crt", rogue_dir / "ca.key", cn="another-ca")
    return {"n1": host_files(tmp_path, ca, "n1"), "n2": host_files(tmp_path, ca, "n2"),
            "rogue": host_files(rogue_dir, rogue_ca, "n1")}


async def pair(run_dir: Path, images: Path) -> tuple[QemuDriver, QemuDriver]:
    source = QemuDriver(run_dir / "src", images, "tcg")
    target = QemuDriver(run_dir / "dst", images, "tcg")
    config = VMConfig(vmid=VMID, name="tls", memory_mb=64, cores=1)
    await source.start(config, [])
    await target.start(config, [], incoming="defer")
    return source, target


async def listen(target: QemuDriver, run_dir: Path, files: TLSFiles) -> str:
    creds = await tls.ensure_creds(target, VMID, "server", tls.credentials_dir(
        run_dir / "dst", files))
    await target.qmp(VMID, "migrate-set-parameters", {"tls-creds": creds})
    uri = f"tcp:127.0.0.1:{free_port('127.0.0.1')}"
    await target.qmp(VMID, "migrate-incoming", {"uri": uri})
    return uri


async def outcome(source: QemuDriver, target: QemuDriver) -> tuple[str, str | None]:
    """The source's migration status once it ended, and the target's run state (None: its
    QEMU is gone, as QEMU exits when an incoming migration fails)."""
    status = ""
    for _ in range(400):
        status = str((await source.qmp(VMID, "query-migrate")).get("status"))
        if status in ("completed", "failed", "cancelled"):
            break
        await asyncio.sleep(0.05)
    for _ in range(100):
        if target.pid(VMID) is None:
            return status, None
        try:
            state = str((await target.qmp(VMID, "query-status"))["status"])
        except QemuError:
            return status, None
        if state != "inmigrate":
            return status, state
        await asyncio.sleep(0.05)
    return status, "inmigrate"


async def test_ram_goes_over_tls_between_hosts_of_one_ca(
        run_dir: Path, tiny_images: Path, pki: dict[str, TLSFiles]) -> None:
    source, target = await pair(run_dir, tiny_images)
    await qmp.hold_after_incoming(target, VMID)
    uri = await listen(target, run_dir, pki["n2"])
    creds = await tls.ensure_creds(source, VMID, "client",
                                   tls.credentials_dir(run_dir / "src", pki["n1"]))
    await qmp.start_ram(source, VMID, uri, None, qmp.Tls(creds, "n2"))
    assert await outcome(source, target) == ("completed", "paused")
    params = await source.qmp(VMID, "query-migrate-parameters")
    assert (params["tls-creds"], params["tls-hostname"]) == (creds, "n2")


@pytest.mark.parametrize("sender", ["plain", "rogue", "wrong-name"])
async def test_nothing_gets_through_without_the_clusters_tls(
        run_dir: Path, tiny_images: Path, pki: dict[str, TLSFiles], sender: str) -> None:
    source, target = await pair(run_dir, tiny_images)
    await qmp.hold_after_incoming(target, VMID)
    uri = await listen(target, run_dir, pki["n2"])
    secure = None
    if sender != "plain":
        files = pki["rogue"] if sender == "rogue" else pki["n1"]
        creds = await tls.ensure_creds(source, VMID, "client",
                                       tls.credentials_dir(run_dir / "src", files))
        # "wrong-name": the target's certificate does not name the host the source expects.
        secure = qmp.Tls(creds, "n3" if sender == "wrong-name" else "n2")
    await qmp.start_ram(source, VMID, uri, None, secure)
    status, target_state = await outcome(source, target)
    assert status != "completed" or target_state is None, (status, target_state)
    assert target_state in (None, "inmigrate")  # it never held the VM's memory


async def test_disk_exports_take_tls_clients_only(
        run_dir: Path, tiny_images: Path, pki: dict[str, TLSFiles]) -> None:
    target = QemuDriver(run_dir / "dst", tiny_images, "tcg")
    disk = run_dir / "disk.qcow2"
    await asyncio.to_thread(subprocess.run, ["qemu-img", "create", "-q", "-f", "qcow2",
                                             str(disk), "16M"], check=True)
    config = VMConfig(vmid=VMID, name="tls", memory_mb=64, cores=1,
                      disks=[Disk(volume="shared:disk.qcow2", size_mb=16)])
    await target.start(config, [disk], incoming="defer")
    creds_dir = tls.credentials_dir(run_dir / "dst", pki["n2"])
    creds = await tls.ensure_creds(target, VMID, "server", creds_dir)
    port = free_port("127.0.0.1")
    [ep] = await qmp.export_disks(target, VMID, [0], "127.0.0.1", port, creds)
    plain = await asyncio.create_subprocess_exec(
        "qemu-img", "info", f"nbd://127.0.0.1:{port}/{ep.export}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await plain.communicate()
    assert plain.returncode != 0, "a client without TLS read the export"
    client_dir = tls.credentials_dir(run_dir / "src", pki["n1"])
    secure = await asyncio.create_subprocess_exec(
        "qemu-img", "info", f"--object={tls.creds_option('client', client_dir)}",
        "--image-opts", f"driver=nbd,host=127.0.0.1,port={port},export={ep.export},"
        f"tls-creds={tls.CREDS_ID['client']},tls-hostname=n2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await secure.communicate()
    assert secure.returncode == 0, err.decode()
    assert b"virtual size: 16 MiB" in out


async def test_a_cold_copy_goes_over_tls(run_dir: Path, pki: dict[str, TLSFiles]) -> None:
    source, dest = run_dir / "src.qcow2", run_dir / "dst.raw"
    for path, fmt in ((source, "qcow2"), (dest, "raw")):
        await asyncio.to_thread(subprocess.run, ["qemu-img", "create", "-q", "-f", fmt,
                                                 str(path), "4M"], check=True)
    await asyncio.to_thread(subprocess.run, ["qemu-io", "-f", "qcow2", "-c",
                                             "write -P 0xcd 0 64k", str(source)], check=True)
    server_dir = tls.credentials_dir(run_dir / "dst", pki["n2"])
    port = free_port("127.0.0.1")
    pidfile = run_dir / "nbd.pid"
    # As the target of a cold move serves a fresh volume (target.prepare_cold).
    await asyncio.to_thread(subprocess.run, [
        "qemu-nbd", "--fork", "--persistent", f"--pid-file={pidfile}",
        f"--object={tls.creds_option('server', server_dir)}",
        f"--tls-creds={tls.CREDS_ID['server']}", "--format=raw", "--export-name=disk0",
        "--bind=127.0.0.1", f"--port={port}", str(dest)], check=True)
    try:
        ep = NbdEndpoint(disk=0, host="127.0.0.1", port=port, export="disk0")
        with pytest.raises(TaskFailed):  # in plaintext the server takes nothing
            await cold.copy_volume(str(source), "qcow2", ep, "n2", None)
        await cold.copy_volume(str(source), "qcow2", ep, "n2", tls.credentials_dir(
            run_dir / "src", pki["n1"]))
    finally:
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
    copied = await asyncio.to_thread(subprocess.run, [
        "qemu-io", "-f", "raw", "-r", "-U", "-c", "read -P 0xcd 0 64k", str(dest)],
        capture_output=True, text=True, check=True)
    assert "failed" not in copied.stdout + copied.stderr
