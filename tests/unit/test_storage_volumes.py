from pathlib import Path

import pytest

from corral.cluster.models import StorageConfig, StorageType
from corral.storage.volumes import VolumeError, create_volume, volume_path

STORAGES = {
    "local": StorageConfig(id="local", type=StorageType.DIR, path="storage/local"),
    "shared": StorageConfig(id="shared", type=StorageType.SHARED_DIR, path="/srv/shared"),
}


def test_dir_storage_is_below_the_hosts_data_dir(tmp_path: Path) -> None:
    path = volume_path("local:vm-100-disk-0.qcow2", STORAGES, tmp_path)
    assert path == (tmp_path / "storage/local/vm-100-disk-0.qcow2").resolve()
    assert volume_path("shared:a.raw", STORAGES, tmp_path) == Path("/srv/shared/a.raw")


@pytest.mark.parametrize(
    "volume", ["local:../x.qcow2", "local:..", "local:a/b", "local:/etc/passwd", "nfs:a", "x"]
)
def test_no_volume_escapes_its_storage(volume: str, tmp_path: Path) -> None:
    with pytest.raises(VolumeError):
        volume_path(volume, STORAGES, tmp_path)


async def test_create_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "d" / "v.qcow2"
    assert await create_volume(path, 16)
    stamp = path.stat().st_mtime_ns
    assert not await create_volume(path, 32)
    assert path.stat().st_mtime_ns == stamp
