"""The QEMU command line for a VM, as a pure function of its configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from corral.cluster.models import VMConfig
from corral.qemu.paths import VMPaths

QEMU_BINARY = "qemu-system-x86_64"
# q35 boots the tiny guest fastest under TCG and has the ACPI power button.
MACHINE = "q35"
BASE_APPEND = "console=ttyS0 panic=-1 quiet"
DISK_FORMATS = {".qcow2": "qcow2", ".raw": "raw", ".img": "raw"}


def disk_node_name(index: int) -> str:
    """Block node name of a VM's disk; migration code addresses disks by it."""
    return f"disk{index}"


def disk_device_id(index: int) -> str:
    return f"virtio-disk{index}"


def disk_format(path: Path) -> str:
    try:
        return DISK_FORMATS[path.suffix]
    except KeyError:
        raise ValueError(
            f"cannot tell the format of disk {path}: expected one of {sorted(DISK_FORMATS)}"
        ) from None


def kernel_path(images_dir: Path, image: str, kernel_file: str = "vmlinuz") -> Path:
    return images_dir / image / kernel_file


def serial_chardev(paths: VMPaths) -> str:
    """wait=off: QEMU runs without a client; it accepts one at a time, whenever it comes."""
    return (f"socket,id=serial0,path={paths.serial_socket},server=on,wait=off,"
            f"logfile={paths.serial_log},logappend=on")


def build_command(
    config: VMConfig,
    paths: VMPaths,
    accel: Literal["kvm", "tcg"],
    disk_paths: list[Path],
    images_dir: Path,
    incoming: str | None = None,
    extra_append: str = "",
    kernel_file: str = "vmlinuz",
) -> list[str]:
    """argv for a daemonised QEMU; `kernel_file` picks the image's kernel (vmlinux for PVH)."""
    if len(disk_paths) != len(config.disks):
        raise ValueError(
            f"VM {config.vmid} has {len(config.disks)} disks but {len(disk_paths)} paths given"
        )
    cmd = [
        QEMU_BINARY,
        "-name", config.name,
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-machine", MACHINE,
        "-accel", "kvm" if accel == "kvm" else "tcg,thread=multi",
        "-m", str(config.memory_mb),
        "-smp", str(config.cores),
        "-daemonize",
        "-pidfile", str(paths.pidfile),
        "-qmp", f"unix:{paths.qmp_socket},server=on,wait=off",
        # The serial port is a socket the agent's console attaches to (keystrokes in, output
        # out); QEMU logs all output to the serial log as well, attached or not.
        "-chardev", serial_chardev(paths),
        "-serial", "chardev:serial0",
    ]  # fmt: skip
    if config.image is not None:
        image_dir = images_dir / config.image
        append = " ".join(p for p in (BASE_APPEND, config.append, extra_append) if p)
        cmd += [
            "-kernel", str(kernel_path(images_dir, config.image, kernel_file)),
            "-initrd", str(image_dir / "initrd.img"),
            "-append", append,
        ]  # fmt: skip
    for index, path in enumerate(disk_paths):
        # JSON syntax needs no escaping of commas in file names.
        node = {
            "driver": disk_format(path),
            "node-name": disk_node_name(index),
            "file": {"driver": "file", "filename": str(path)},
        }
        device = f"virtio-blk-pci,drive={disk_node_name(index)},id={disk_device_id(index)}"
        if config.image is None and index == 0:
            device += ",bootindex=1"
        cmd += ["-blockdev", json.dumps(node, separators=(",", ":")), "-device", device]
    if incoming is not None:
        cmd += ["-incoming", incoming]
    return cmd
