"""Kernel module dependency resolution straight from the `.ko` files.

The Debian kernel package ships no modules.dep (depmod runs in its postinst), so the
`depends=` field of each module's `.modinfo` ELF section is the source of truth.
"""

from __future__ import annotations

import struct
from pathlib import Path


def _canonical(name: str) -> str:
    return name.replace("-", "_")


def modinfo(path: Path) -> dict[str, str]:
    """The key=value pairs of a module's .modinfo section (first value wins)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path}: not a little-endian ELF64 kernel module")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", data, shoff + index * shentsize
        )
        return name, offset, size

    _, stroff, _ = section(shstrndx)
    info: dict[str, str] = {}
    for i in range(shnum):
        name_off, offset, size = section(i)
        end = data.index(b"\0", stroff + name_off)
        if data[stroff + name_off : end] != b".modinfo":
            continue
        for item in data[offset : offset + size].split(b"\0"):
            key, sep, value = item.decode(errors="replace").partition("=")
            if sep:
                info.setdefault(key, value)
    return info


def index_modules(modules_dir: Path) -> dict[str, Path]:
    """Module name -> .ko path for every module below `modules_dir`."""
    return {_canonical(p.name.removesuffix(".ko")): p for p in modules_dir.rglob("*.ko")}


def load_order(wanted: list[str], index: dict[str, Path]) -> list[Path]:
    """`wanted` and all their dependencies, each after everything it depends on."""
    order: list[Path] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(name: str) -> None:
        name = _canonical(name)
        if name in done:
            return
        if name in visiting:
            raise ValueError(f"module dependency cycle through {name}")
        if name not in index:
            raise KeyError(f"kernel module {name} not found")
        visiting.add(name)
        for dep in filter(None, modinfo(index[name]).get("depends", "").split(",")):
            visit(dep)
        visiting.discard(name)
        done.add(name)
        order.append(index[name])

    for name in wanted:
        visit(name)
    return order
