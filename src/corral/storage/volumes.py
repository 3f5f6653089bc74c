"""Volumes on a host: where a volume id lives on disk, creating and removing its file.

A volume id names a file inside its storage's directory and nothing else: every path is
resolved and checked to stay inside that directory, so no request can reach another file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from corral.cluster.models import VOLUME_RE, StorageConfig, StorageType


class VolumeError(ValueError):
    pass


def storage_root(storage: StorageConfig, data_dir: Path) -> Path:
    root = Path(storage.path)
    if storage.type is StorageType.DIR and not root.is_absolute():
        root = data_dir / root
    return root.resolve()


def volume_path(volume: str, storages: dict[str, StorageConfig], data_dir: Path) -> Path:
    m = VOLUME_RE.match(volume)
    if not m or ".." in volume:
        raise VolumeError(f"volume {volume!r} is not '<storage>:<file name>'")
    storage = storages.get(m["storage"])
    if storage is None:
        raise VolumeError(f"volume {volume!r} is on unknown storage {m['storage']!r}")
    root = storage_root(storage, data_dir)
    path = (root / m["name"]).resolve()
    if path.parent != root:
        raise VolumeError(f"volume {volume!r} escapes its storage directory")
    return path


def volume_format(path: Path) -> str:
    return "raw" if path.suffix == ".raw" else "qcow2"


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise VolumeError(f"{argv[0]} failed: {err.decode(errors='replace').strip()}")


async def create_volume(path: Path, size_mb: int) -> bool:
    """Create the volume file; False (and nothing touched) when it already exists, so a task
    retried after an agent restart never overwrites a disk."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".creating")
    await _run("qemu-img", "create", "-q", "-f", volume_format(path), str(tmp), f"{size_mb}M")
    tmp.rename(path)
    return True


def remove_volume(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
