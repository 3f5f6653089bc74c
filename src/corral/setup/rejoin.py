"""`corral cluster rejoin`: a host the cluster was rebuilt without (`cluster expected 1` on
another host) joins again, clean.

Its etcd data holds the old membership: started as it is, the member stops itself once it
reaches the rebuilt cluster (etcd stops a member the cluster removed), and nothing of it may
be merged back. So, in order:
1. refuse unless the endpoints in its config show that the cluster no longer lists it
   (`cluster.standing`);
2. stop its agent, API and etcd;
3. ask the cluster to take it back (`POST /cluster/rejoin`, authenticated by the host's own
   certificate); refused, its services are started again as they were;
4. move its etcd data aside to `<data>/etcd.stale-<time>` (kept, not deleted: it is the
   only copy of whatever that host wrote while it was cut off);
5. start etcd as a learner with the member list the cluster answered, wait to be promoted,
   then start its watchdog, agent and API.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from corral.agent import standing_watch
from corral.cluster import members
from corral.cluster.standing import Verdict, standing
from corral.host import config as host_config
from corral.host.commands import AGENT, API, ETCD, ServiceName, services_of
from corral.host.config import HostConfig, url
from corral.host.services import Services
from corral.setup import local
from corral.setup.join import TIMEOUT, read_reply, server_url
from corral.setup.local import Say, SetupError
from corral.setup.rejoin_rules import RejoinBundle


async def standing_here(config: HostConfig) -> Verdict:
    """This host's standing, from every etcd endpoint in its config (its own first)."""
    endpoints = config.etcd_endpoints_local_first
    views = await members.endpoint_views(endpoints, local.host_tls(config))
    return standing(config.member_name, config.client_url, views)


def default_server(config: HostConfig) -> str:
    """Another member's host, at this host's API port (every real host uses the same)."""
    for endpoint in config.etcd_endpoints:
        if endpoint != config.client_url:
            host = urlsplit(endpoint).hostname
            if host:
                return url("https", host, config.api_port)
    raise SetupError("server: this host's config names no other cluster host; say which "
                     "host's API to ask")


def ask_to_rejoin(base: str, config: HostConfig) -> RejoinBundle:
    tls = local.host_tls(config)
    try:
        reply = httpx.post(f"{base}/api/v1/cluster/rejoin", timeout=TIMEOUT,
                           **tls.httpx_kwargs())
    except httpx.HTTPError as e:
        raise SetupError(f"server: the rejoin request to {base} failed: {e}") from e
    return read_reply(reply, RejoinBundle, "rejoin")


def move_aside(config: HostConfig, now: float) -> Path | None:
    """The old etcd data to `<data>/etcd.stale-<time>`; None when there was none."""
    data = config.etcd_data_dir
    if not data.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    target = config.data_dir / f"etcd.stale-{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = config.data_dir / f"etcd.stale-{stamp}-{n}"
    data.rename(target)
    return target


async def rejoin_cluster(config: HostConfig, services: Services, say: Say,
                         server: str | None = None) -> RejoinBundle:
    if config.tls is None:
        raise SetupError("tls: a rejoin is authenticated by the host's certificate; the host "
                         "config has no TLS files")
    say(f"asking the cluster's members whether {config.name} is still one of them")
    verdict = await standing_here(config)
    if verdict.standing != "dropped":
        raise SetupError(f"refused: {config.name} is not known to be dropped from its "
                         f"cluster ({verdict.reason}); a rejoin would throw its etcd data away")
    say(f"{config.name} is no longer a member: {verdict.reason}")
    base = server_url(server) if server else default_server(config)
    ours: list[ServiceName] = [s for s in services_of(config) if s in (ETCD, AGENT, API)]
    say(f"stopping {', '.join(ours)}")
    services.stop(ours)
    try:
        say(f"asking {base} to take {config.name} back (with its own certificate)")
        bundle = ask_to_rejoin(base, config)
    except SetupError:
        services.start(ours)  # nothing was changed: back as it was
        raise
    moved = move_aside(config, time.time())
    if moved is not None:
        say(f"moved the old etcd data aside to {moved} (not deleted: remove it once the "
            "host is back)")
    config = HostConfig.model_validate(config.model_dump() | {
        "cluster": bundle.cluster, "etcd_endpoints": bundle.etcd_endpoints,
        "initial_cluster": bundle.initial_cluster, "initial_cluster_state": "existing"})
    host_config.save(config)
    standing_watch.write_notice(config.qemu_run_dir, None)
    local.install(config, services)
    services.start([ETCD])
    await local.wait_voter(config, say)
    say("starting the watchdog, the agent and the API")
    local.start_rest(config, services)
    return bundle
