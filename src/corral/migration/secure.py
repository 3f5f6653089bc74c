"""Whether a migration's streams go over TLS: the target says (it listens for TLS only when
its host has the cluster's certificates), and a source with them never sends in plaintext."""

from __future__ import annotations

from pathlib import Path

from corral.agent.context import TaskFailed
from corral.migration.record import MigrationRecord


def sender_credentials(own: Path | None, ready: MigrationRecord) -> Path | None:
    """This host's QEMU credentials directory when the streams go over TLS, None when they go
    in plaintext (a lab without certificates); TaskFailed when the two hosts disagree."""
    if ready.tls and own is None:
        raise TaskFailed(f"{ready.target} takes migrations over TLS only, and this host has "
                         "no certificate of the cluster")
    if not ready.tls and own is not None:
        raise TaskFailed(f"{ready.target} does not listen over TLS: not sending VM "
                         f"{ready.vmid}'s memory or disks in plaintext")
    return own
