from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.cluster.models import Disk, VMConfig
from corral.qemu.cmdline import build_command, disk_node_name
from corral.qemu.paths import SocketPathTooLong, VMPaths

IMAGES = Path("/srv/images")
RUN = Path("/run/corral")


def config(**kw: object) -> VMConfig:
    base: dict[str, object] = {"vmid": 101, "name": "web-1", "memory_mb": 256, "cores": 2}
    return VMConfig.model_validate(base | kw)


def option(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, arg in enumerate(cmd) if arg == flag]


def test_basic_tcg_command() -> None:
    paths = VMPaths(RUN, 101)
    cmd = build_command(config(), paths, "tcg", [], IMAGES)
    assert cmd[0] == "qemu-system-x86_64"
    assert option(cmd, "-name") == ["web-1"]
    assert option(cmd, "-accel") == ["tcg,thread=multi"]
    assert option(cmd, "-m") == ["256"]
    assert option(cmd, "-smp") == ["2"]
    assert option(cmd, "-machine") == ["q35"]
    assert option(cmd, "-pidfile") == ["/run/corral/101.pid"]
    assert option(cmd, "-qmp") == ["unix:/run/corral/101.qmp,server=on,wait=off"]
    assert option(cmd, "-chardev") == [
        "socket,id=serial0,path=/run/corral/101.tty,server=on,wait=off,"
        "logfile=/run/corral/101.serial.log,logappend=on"]
    assert option(cmd, "-serial") == ["chardev:serial0"]
    assert {"-daemonize", "-nodefaults", "-no-user-config"} <= set(cmd)
    assert option(cmd, "-kernel") == ["/srv/images/tiny/vmlinuz"]
    assert option(cmd, "-initrd") == ["/srv/images/tiny/initrd.img"]
    assert option(cmd, "-append") == ["console=ttyS0 panic=-1 quiet"]
    assert "-incoming" not in cmd
    assert not any("locking" in arg for arg in cmd)


def test_kvm_extra_append_incoming_and_kernel_file() -> None:
    cmd = build_command(
        config(), VMPaths(RUN, 101), "kvm", [], IMAGES,
        incoming="tcp:0.0.0.0:4444", extra_append="corral.diskmark=1", kernel_file="vmlinux",
    )  # fmt: skip
    assert option(cmd, "-accel") == ["kvm"]
    assert option(cmd, "-append") == ["console=ttyS0 panic=-1 quiet corral.diskmark=1"]
    assert option(cmd, "-incoming") == ["tcp:0.0.0.0:4444"]
    assert option(cmd, "-kernel") == ["/srv/images/tiny/vmlinux"]


def test_disks_as_virtio_blockdevs() -> None:
    cfg = config(
        disks=[
            Disk(volume="local:vm-101-disk-0.qcow2", size_mb=64),
            Disk(volume="local:vm-101-disk-1.raw", size_mb=64),
        ]
    )
    disks = [Path("/d/a,b.qcow2"), Path("/d/b.raw")]
    cmd = build_command(cfg, VMPaths(RUN, 101), "tcg", disks, IMAGES)
    nodes = [json.loads(arg) for arg in option(cmd, "-blockdev")]
    assert [(n["driver"], n["node-name"], n["file"]) for n in nodes] == [
        ("qcow2", "disk0", {"driver": "file", "filename": "/d/a,b.qcow2"}),
        ("raw", "disk1", {"driver": "file", "filename": "/d/b.raw"}),
    ]
    assert option(cmd, "-device") == [
        "virtio-blk-pci,drive=disk0,id=virtio-disk0",
        "virtio-blk-pci,drive=disk1,id=virtio-disk1",
    ]
    assert disk_node_name(1) == "disk1"


def test_no_image_boots_first_disk() -> None:
    cfg = config(image=None, disks=[Disk(volume="local:vm-101-disk-0.raw", size_mb=64)])
    cmd = build_command(cfg, VMPaths(RUN, 101), "tcg", [Path("/d/x.raw")], IMAGES)
    assert "-kernel" not in cmd and "-append" not in cmd
    assert option(cmd, "-device") == ["virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=1"]


def test_unknown_disk_format_is_refused() -> None:
    cfg = config(disks=[Disk(volume="local:vm-101-disk-0.vmdk", size_mb=64)])
    with pytest.raises(ValueError, match="format"):
        build_command(cfg, VMPaths(RUN, 101), "tcg", [Path("/d/x.vmdk")], IMAGES)


def test_disk_count_must_match() -> None:
    with pytest.raises(ValueError, match="disks"):
        build_command(config(), VMPaths(RUN, 101), "tcg", [Path("/d/x.raw")], IMAGES)


def test_socket_path_length_is_checked() -> None:
    with pytest.raises(SocketPathTooLong, match="107"):
        VMPaths(Path("/tmp") / ("x" * 120), 101)
    # Every socket is checked: the serial port's as well as QMP's.
    with pytest.raises(SocketPathTooLong, match=r"100\.(qmp|tty)"):
        VMPaths(Path("/") / ("x" * 100), 100)
    paths = VMPaths(RUN, 7)
    assert paths.serial_log == RUN / "7.serial.log"
    assert paths.serial_socket == RUN / "7.tty"
