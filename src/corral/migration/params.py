"""What a migration is asked to do: task parameters and the bandwidth limit syntax."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

_BW_RE = re.compile(r"^(?P<n>\d+(\.\d+)?)\s*(?P<unit>[KMG]?)(i?B)?(/s)?$", re.IGNORECASE)
_UNIT_MIB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "": 1.0}  # a bare number is MiB/s
MAX_BWLIMIT_MIBS = 1024 * 1024


def parse_bwlimit(value: str | int | None) -> int | None:
    """'200M' -> 200, '1G' -> 1024, 50 -> 50 (MiB/s); None means no limit."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("bwlimit must be a rate like 200M or a number of MiB/s")
    if isinstance(value, int):
        mib = float(value)
    else:
        m = _BW_RE.match(value.strip())
        if not m:
            raise ValueError(f"bwlimit {value!r} is not a rate like 200M, 1G or 50 (MiB/s)")
        mib = float(m["n"]) * _UNIT_MIB[m["unit"].upper()]
    if mib < 1:
        raise ValueError("bwlimit must be at least 1 MiB/s")
    if mib > MAX_BWLIMIT_MIBS:
        raise ValueError(f"bwlimit must be at most {MAX_BWLIMIT_MIBS} MiB/s")
    return int(mib)


class MigrateParams(BaseModel):
    """Parameters of a `vm.migrate` task (the manager queues these too)."""

    model_config = ConfigDict(extra="ignore")

    target: str
    with_local_disks: bool = False
    bwlimit_mbps: int | None = Field(default=None, ge=1)  # MiB/s, RAM and disks each
    origin: str | None = None  # host the VM returns to after maintenance; None for manual moves
    # Why the move was asked for (the load balancer says what it saw), for the task's log.
    reason: str = Field(default="", max_length=1000)
    # Seconds the target agent has to claim its task and get ready.
    ready_timeout: float = Field(default=30.0, gt=0)
    # Seconds without any byte moving before the migration counts as stalled.
    stall_timeout: float = Field(default=30.0, gt=0)


class ReceiveParams(BaseModel):
    """Parameters of a `vm.receive` task: the record holds the rest."""

    model_config = ConfigDict(extra="ignore")

    source: str
    # Seconds the target waits for the source to finish after being ready.
    timeout: float = Field(default=6 * 3600.0, gt=0)
