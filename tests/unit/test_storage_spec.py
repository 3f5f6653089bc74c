import pytest

from corral.storage.spec import parse_disk_spec, parse_size_mb, volume_name


@pytest.mark.parametrize(
    ("text", "mb"), [("1G", 1024), ("512M", 512), ("10", 10240), ("1.5G", 1536), ("2GiB", 2048)]
)
def test_sizes(text: str, mb: int) -> None:
    assert parse_size_mb(text) == mb


@pytest.mark.parametrize("text", ["", "0", "abc", "-1G", "1X", "100T"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size_mb(text)


def test_disk_spec() -> None:
    assert parse_disk_spec("local:1G") == ("local", 1024)
    for bad in ["local", "../x:1G", "Local:1G", ":1G"]:
        with pytest.raises(ValueError):
            parse_disk_spec(bad)


def test_volume_name() -> None:
    assert volume_name(101, 0) == "vm-101-disk-0.qcow2"
