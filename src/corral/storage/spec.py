"""Disk specs as operators write them ("local:1G") and volume names: pure parsing, no I/O."""

from __future__ import annotations

import re

from corral.cluster.models import STORAGE_ID_RE

_SIZE_RE = re.compile(r"^(?P<n>\d+(\.\d+)?)(?P<unit>[KMGT]?)(i?B)?$", re.IGNORECASE)
_UNIT_MB = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024, "": 1024}  # bare number: GiB
MAX_DISK_MB = 64 * 1024 * 1024


def parse_size_mb(text: str) -> int:
    """'1G' -> 1024, '512M' -> 512, '10' -> 10240 (a bare number is GiB, as in Proxmox)."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise ValueError(f"size {text!r} is not a size like 512M, 1G or 10")
    mb = int(float(m["n"]) * _UNIT_MB[m["unit"].upper()])
    if mb < 1:
        raise ValueError(f"size {text!r} is smaller than 1 MiB")
    if mb > MAX_DISK_MB:
        raise ValueError(f"size {text!r} is larger than 64 TiB")
    return mb


def parse_disk_spec(spec: str) -> tuple[str, int]:
    """'local:1G' -> ('local', 1024)."""
    storage, sep, size = spec.partition(":")
    if not sep or not STORAGE_ID_RE.match(storage):
        raise ValueError(f"disk {spec!r} is not '<storage>:<size>', e.g. local:1G")
    return storage, parse_size_mb(size)


def volume_name(vmid: int, index: int, fmt: str = "qcow2") -> str:
    return f"vm-{vmid}-disk-{index}.{fmt}"
