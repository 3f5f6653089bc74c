from __future__ import annotations

import io
import lzma
import subprocess
from pathlib import Path

import pytest

from corral.image.cpio import CpioWriter
from corral.image.kernel import extract_vmlinux
from corral.image.tiny import ImageBuildError, init_script, modules_to_load


def test_init_script_has_heartbeat_power_button_and_disk() -> None:
    init = init_script().decode()
    assert init.startswith("#!/bin/sh")
    assert 'echo "corral-heartbeat $n"' in init
    assert "corral-guest: power button, powering off" in init
    assert "poweroff -f" in init
    assert "corral-disk: present" in init
    assert "corral.diskmark=1" in init


def test_cpio_archive_is_readable_by_cpio(tmp_path: Path) -> None:
    out = io.BytesIO()
    cpio = CpioWriter(out)
    cpio.directory("bin")
    cpio.file("bin/busybox", b"x" * 5, 0o755)
    cpio.symlink("bin/sh", "/bin/busybox")
    cpio.chardev("console", 5, 1)
    cpio.close()
    listing = subprocess.run(
        ["cpio", "-it", "--quiet"], input=out.getvalue(), capture_output=True, check=True
    ).stdout.split()
    assert listing == [b"bin", b"bin/busybox", b"bin/sh", b"console"]


def test_extract_vmlinux_finds_xz_payload() -> None:
    elf = b"\x7fELF" + b"\0" * 100
    bzimage = b"MZ setup code" + lzma.compress(elf, format=lzma.FORMAT_XZ) + b"trailer"
    assert extract_vmlinux(bzimage) == elf
    assert extract_vmlinux(b"nothing here") is None


def test_modules_to_load_follows_kernel_config() -> None:
    options = {
        "CONFIG_VIRTIO_PCI": "m",
        "CONFIG_VIRTIO_BLK": "y",
        "CONFIG_ACPI_BUTTON": "m",
        "CONFIG_INPUT_EVDEV": "m",
    }
    assert modules_to_load(options) == ["virtio_pci", "button", "evdev"]
    with pytest.raises(ImageBuildError, match="CONFIG_VIRTIO_BLK"):
        modules_to_load({**options, "CONFIG_VIRTIO_BLK": "n"})
