"""Which pki files let the API admit and remove members: without the CA key or the root
certificate it says which file is missing instead."""

from __future__ import annotations

from pathlib import Path

from corral.api.app import admin_files
from corral.pki.files import TLSFiles


def test_the_root_certificate_and_ca_key_are_needed(tmp_path: Path) -> None:
    for name in ("ca.crt", "ca.key", "admin.crt"):
        (tmp_path / name).write_text("x")
    missing = admin_files(tmp_path)
    assert isinstance(missing, str) and str(tmp_path / "admin.key") in missing
    assert "only a full host" in missing
    (tmp_path / "admin.key").write_text("x")
    assert admin_files(tmp_path) == TLSFiles.in_dir(tmp_path, "admin")
    (tmp_path / "ca.key").unlink()  # a witness's directory: no CA key
    assert str(tmp_path / "ca.key") in str(admin_files(tmp_path))
