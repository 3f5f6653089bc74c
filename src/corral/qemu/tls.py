"""TLS for what QEMU sends between hosts: a live migration's RAM and the NBD streams of disks,
with the host's certificate of the cluster CA on both ends (mutual: the receiving end takes
only a peer with a certificate of that CA, and the sender checks the receiver's name).

QEMU's `tls-creds-x509` object reads a directory with fixed file names; the host's files are
linked into one under the run directory, so a renewed certificate is read at the next use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from corral.pki.files import TLSFiles
from corral.qemu.driver import QemuDriver, QemuError

Endpoint = Literal["server", "client"]
CREDS_ID: dict[Endpoint, str] = {"server": "corral-tls-server", "client": "corral-tls-client"}


def credentials_dir(run_dir: Path, tls: TLSFiles) -> Path:
    """The host's CA, certificate and key under the names QEMU looks for, as either end."""
    out = run_dir / "qemu-tls"
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    links = {"ca-cert.pem": tls.ca, "server-cert.pem": tls.cert, "server-key.pem": tls.key,
             "client-cert.pem": tls.cert, "client-key.pem": tls.key}
    for name, target in links.items():
        link = out / name
        if link.is_symlink() and link.readlink() == target.resolve():
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(target.resolve())
    return out


def creds_option(endpoint: Endpoint, directory: Path) -> str:
    """The `--object` of qemu-img and qemu-nbd for these credentials."""
    return (f"tls-creds-x509,id={CREDS_ID[endpoint]},dir={directory},endpoint={endpoint},"
            f"verify-peer=on")


async def ensure_creds(driver: QemuDriver, vmid: int, endpoint: Endpoint,
                       directory: Path) -> str:
    """Add the credentials object to the VM's QEMU (once: a second migration reuses it) and
    return its id."""
    creds = CREDS_ID[endpoint]
    try:
        await driver.qmp(vmid, "object-add", {
            "qom-type": "tls-creds-x509", "id": creds, "dir": str(directory),
            "endpoint": endpoint, "verify-peer": True})
    except QemuError as e:
        if "exists" not in str(e) and "duplicate" not in str(e).lower():
            raise
    return creds
