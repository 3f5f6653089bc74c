"""Does this host still belong to its cluster? The agent asks before it registers, and again
whenever it has gone without a lease for a while.

A host the cluster was rebuilt without (`cluster expected 1` elsewhere) must not take a lease
from the rebuilt cluster through another host's endpoint and resume its old VMs: it holds
back, says loudly why (once a minute), and leaves a notice in its run dir that `cluster
status` on the host shows. The decision is `cluster.standing`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from corral.cluster import members
from corral.cluster.standing import (
    DROPPED_ADVICE,
    DroppedNotice,
    Verdict,
    next_notice,
    should_log,
    standing,
)
from corral.pki.files import TLSFiles

log = logging.getLogger(__name__)
NOTICE_NAME = "not-a-member.json"
CHECK_EVERY = 5.0
# Without a lease this long, the agent asks whether its host was dropped: a few failed
# renewals are an election or a short cut, not yet worth asking every member.
GRACE = 10.0


class NotAMember(RuntimeError):
    """The cluster no longer lists this host's etcd member."""


def notice_path(run_dir: Path) -> Path:
    return run_dir / NOTICE_NAME


def read_notice(run_dir: Path) -> DroppedNotice | None:
    try:
        return DroppedNotice.model_validate_json(notice_path(run_dir).read_bytes())
    except (OSError, ValidationError):
        return None


def write_notice(run_dir: Path, notice: DroppedNotice | None) -> None:
    path = notice_path(run_dir)
    if notice is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(notice.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)


async def check(node: str, endpoints: Sequence[str], tls: TLSFiles | None) -> Verdict:
    """Ask every endpoint (the host's own first, as its config lists them)."""
    views = await members.endpoint_views(endpoints, tls)
    return standing(node, endpoints[0], views)


def record(run_dir: Path, node: str, verdict: Verdict, now: float) -> None:
    """Keep the notice in step with the verdict; say it loudly on first sight and once a
    minute after."""
    before = read_notice(run_dir)
    if verdict.standing == "dropped" and should_log(before, now):
        log.error("HOST %s IS NO LONGER A MEMBER OF ITS CLUSTER: %s. %s", node,
                  verdict.reason, DROPPED_ADVICE)
    write_notice(run_dir, next_notice(before, verdict, now))


async def hold_while_dropped(node: str, endpoints: Sequence[str], tls: TLSFiles | None,
                             run_dir: Path, every: float = CHECK_EVERY) -> None:
    """Before registering: return once the host is not known to be dropped; while it is,
    wait (it takes no lease and starts nothing)."""
    while True:
        verdict = await check(node, endpoints, tls)
        record(run_dir, node, verdict, time.time())
        if verdict.standing != "dropped":
            return
        await asyncio.sleep(every)


async def watch(node: str, endpoints: Sequence[str], tls: TLSFiles | None, run_dir: Path,
                leased: Callable[[], bool], every: float = CHECK_EVERY,
                grace: float = GRACE) -> None:
    """While the agent runs: after `grace` s without a lease, ask; NotAMember when the host
    was dropped (the agent then stops, and holds back when it starts again)."""
    last_leased = time.monotonic()
    while True:
        await asyncio.sleep(every)
        if leased():
            last_leased = time.monotonic()
            continue
        if time.monotonic() - last_leased < grace:
            continue
        verdict = await check(node, endpoints, tls)
        record(run_dir, node, verdict, time.time())
        if verdict.standing == "dropped":
            raise NotAMember(verdict.reason)
