"""What `cluster create`, `join` and `witness setup` do on the host they run on: its services,
its files, waiting for its etcd member. The flows themselves are in create.py and join.py."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from corral.cluster import members
from corral.cluster.health import healthy
from corral.host import config as host_config
from corral.host import services as host_services
from corral.host.commands import ETCD, host_commands, services_of
from corral.host.config import HostConfig
from corral.host.services import Services, SupervisedServices, SystemdServices
from corral.pki.files import TLSFiles

Say = Callable[[str], None]
ETCD_START_TIMEOUT = 60.0
PROMOTION_TIMEOUT = 150.0  # the admitting API promotes within 120 s (setup.admission)
POLL = 0.3


class SetupError(RuntimeError):
    """A step of create or join could not be done; the message says which and why."""


def services_for(config: HostConfig, units_root: Path = host_services.UNITS_ROOT) -> Services:
    """systemd where it runs the machine; the lab supervisor's control file otherwise."""
    if config.managed_by == "supervisor":
        return SupervisedServices(config.name, config.run_dir)
    if not host_services.systemd_booted():
        raise SetupError("systemd does not run this machine, so Corral cannot install its "
                         "services here (managed_by: systemd in the host config); the lab "
                         "runs hosts under its own supervisor")
    return SystemdServices(units_root)


def fresh_host(config: HostConfig) -> None:
    """Refuse a host that already is (or was) part of a cluster: its etcd data would make it
    rejoin its old cluster, and its files would be overwritten."""
    data = config.etcd_data_dir
    if data.exists() and any(data.iterdir()):
        raise SetupError(f"{data} holds etcd data: this host is or was a cluster member "
                         "(`corral cluster rejoin` for a host the cluster dropped)")
    if config.config_path.exists():
        raise SetupError(f"{config.config_path} exists: this host is already set up")


def install(config: HostConfig, services: Services) -> None:
    """The host's services with their command lines, none started yet; softdog loaded (and
    at every boot) on a real host without a watchdog device, before the mux needs it."""
    host_services.load_softdog(config)
    services.install(host_commands(config))


def host_tls(config: HostConfig) -> TLSFiles:
    if config.tls is None:
        raise SetupError("tls: a cluster host needs its TLS files (the host config has none)")
    return TLSFiles(config.tls.ca_cert, config.tls.cert, config.tls.key)


def admin_tls(config: HostConfig) -> TLSFiles:
    tls = config.tls
    if tls is None or tls.admin_cert is None or tls.admin_key is None:
        raise SetupError("tls: this host has no admin certificate (a witness has none)")
    return TLSFiles(tls.ca_cert, tls.admin_cert, tls.admin_key)


async def wait_etcd(config: HostConfig, say: Say, timeout: float = ETCD_START_TIMEOUT) -> None:
    """Until the host's own member answers /health (which needs a leader)."""
    say(f"waiting for the etcd member of {config.name}")
    tls = host_tls(config)
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(healthy, config.local_client_url, 1.0, tls):
        if time.monotonic() > deadline:
            raise SetupError(f"the etcd member of {config.name} does not answer at "
                             f"{config.local_client_url} after {timeout:.0f}s (see its log)")
        await asyncio.sleep(POLL)


async def wait_voter(config: HostConfig, say: Say, timeout: float = PROMOTION_TIMEOUT) -> None:
    """Until the host's member is a voter: the cluster promotes a learner once it caught up."""
    say(f"waiting for {config.member_name} to catch up and become a voter")
    tls = host_tls(config)
    deadline = time.monotonic() + timeout
    while True:
        status = await members.endpoint_status(config.local_client_url, tls)
        if status is not None and not status.is_learner:
            return
        if time.monotonic() > deadline:
            raise SetupError(f"{config.member_name} is still not a voter after "
                             f"{timeout:.0f}s: see `corral cluster status` on another host")
        await asyncio.sleep(POLL * 3)


def adopt_endpoints(config: HostConfig, endpoints: list[str], services: Services
                    ) -> HostConfig:
    """The host's config and services with these etcd endpoints (every member's client URL):
    its agent and API then dial every member, not only those that existed when it joined.
    Services whose command line changes are restarted by their manager."""
    if sorted(endpoints) == sorted(config.etcd_endpoints):
        return config
    config = HostConfig.model_validate(config.model_dump() | {"etcd_endpoints": endpoints})
    host_config.save(config)
    install(config, services)
    return config


API_START_TIMEOUT = 60.0


async def wait_api(config: HostConfig, say: Say, timeout: float = API_START_TIMEOUT) -> None:
    """Until the host's API answers over HTTPS with a certificate of the cluster's CA."""
    say(f"waiting for the API of {config.name} at {config.api_url}")
    tls = host_tls(config)
    ctx = ssl.create_default_context(cafile=str(tls.ca))
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(verify=ctx, timeout=2.0) as http:
        while True:
            try:
                if (await http.get(f"{config.api_url}/api/v1/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SetupError(f"the API of {config.name} does not answer at "
                                 f"{config.api_url} after {timeout:.0f}s (see its log)")
            await asyncio.sleep(POLL)


def start_rest(config: HostConfig, services: Services) -> None:
    """Everything after etcd: the watchdog, the agent, the API (a witness has none)."""
    rest = [s for s in services_of(config) if s != ETCD]
    if rest:
        services.start(rest)
