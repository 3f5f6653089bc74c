"""Starts a host's etcd member: `python -m corral.host.etcd_launch ETCD [ARG...]`.

It clears a data dir that never got past its first start (see `etcd_wal`), then becomes etcd
(exec: the same PID, so systemd and the lab supervisor watch etcd itself). Without this, a host
that lost power in the second after its etcd first started would keep a member that can never
elect a leader, and only an admin deleting its data dir would bring it back. Stdlib only: it
runs before every etcd start.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from corral.host.etcd_wal import never_bootstrapped


def data_dir_of(argv: Sequence[str]) -> Path | None:
    """etcd's --data-dir, as either `--data-dir X` or `--data-dir=X`."""
    for i, arg in enumerate(argv):
        if arg in ("--data-dir", "-data-dir") and i + 1 < len(argv):
            return Path(argv[i + 1])
        for flag in ("--data-dir=", "-data-dir="):
            if arg.startswith(flag):
                return Path(arg[len(flag):])
    return None


# Where a cleared member goes before it is deleted: one rename, so a launcher killed while
# deleting leaves either the whole member or none of it, never a WAL dir etcd cannot read.
DISCARDED = "member.corral-discarded"


def clear_unbootstrapped(data_dir: Path) -> bool:
    """Remove data_dir's member when nothing was ever committed in it. True if removed."""
    # What a launcher killed mid-delete left behind. etcd ignores it, but it is no use.
    shutil.rmtree(data_dir / DISCARDED, ignore_errors=True)
    if not never_bootstrapped(data_dir):
        return False
    print(f"corral: {data_dir / 'member'} holds a WAL without a single entry: this member "
          "was stopped during its first start and could never elect a leader from it. "
          "Removing it; etcd starts afresh from its initial flags.", file=sys.stderr, flush=True)
    (data_dir / "member").rename(data_dir / DISCARDED)
    shutil.rmtree(data_dir / DISCARDED, ignore_errors=True)
    return True


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m corral.host.etcd_launch ETCD [ARG...]", file=sys.stderr)
        raise SystemExit(2)
    data_dir = data_dir_of(args[1:])
    if data_dir is not None:
        clear_unbootstrapped(data_dir)
    os.execv(args[0], args)


if __name__ == "__main__":
    main()
