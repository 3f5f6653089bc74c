"""`corral cluster create`: the first host of a new cluster.

It makes the cluster's CA and this host's certificates, starts a one-member etcd over mutual
TLS, turns etcd's authentication on (a user per certificate CN), records the cluster, seeds
the storages and an API token, then starts the watchdog, the agent and the API.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from corral.cluster import etcd_auth, keys, members
from corral.cluster.models import ClusterHost, ClusterInfo, StorageConfig, StorageType
from corral.cluster.store import Store
from corral.host import config as host_config
from corral.host.commands import ETCD
from corral.host.config import HostConfig
from corral.host.services import Services
from corral.pki import ca as pki_ca
from corral.pki import certs, pem
from corral.setup import local
from corral.setup.admission import ADMIN_CN
from corral.setup.join_rules import host_identity
from corral.setup.local import Say, SetupError

LOCAL_STORAGE_PATH = "storage/local"  # below the host's data dir, on every host


@dataclass(frozen=True)
class Created:
    api_url: str
    api_token: str
    ca_file: Path


def write_pki(config: HostConfig) -> str:
    """The cluster CA, this host's certificate and the admin (etcd root) certificate, in the
    host's pki dir. Returns the CA's hash (what join tokens carry)."""
    tls = config.tls
    if tls is None or tls.ca_key is None or tls.admin_cert is None or tls.admin_key is None:
        raise SetupError("tls: the first host keeps the CA key and the admin certificate "
                         "(role host with TLS files)")
    ca = pki_ca.make_ca(config.cluster)
    pki_ca.write_ca(ca, tls.ca_cert, tls.ca_key)
    key, cert = certs.issue(ca, host_identity(config.name, "host", config.address))
    certs.write_pair(tls.cert, tls.key, cert, key)
    admin_key, admin_cert = certs.issue(ca, certs.Identity.of(ADMIN_CN))
    pem.write_cert(tls.admin_cert, admin_cert)
    pem.write_key(tls.admin_key, admin_key)
    return pki_ca.spki_sha256(ca.cert)


async def seed(config: HostConfig, ca_hash: str, shared_dir: Path | None, now: float) -> str:
    """Auth on, the cluster's own records, storages and an API token (made as root: only root
    may turn authentication on and write outside the host role's prefix)."""
    async with Store([config.local_client_url], tls=local.admin_tls(config)) as admin:
        await etcd_auth.setup(admin, hosts=[config.name])
        me = next(m for m in await members.list_members(admin) if m.name == config.member_name)
        await admin.put(keys.CLUSTER_INFO,
                        ClusterInfo(name=config.cluster, epoch=1, ca_hash=ca_hash,
                                    created_at=now))
        await admin.put(keys.cluster_host(config.name), ClusterHost(
            name=config.name, role="host", address=config.address, member_id=me.id,
            peer_urls=[config.peer_url], client_urls=[config.client_url], joined_at=now))
        storages = [StorageConfig(id="local", type=StorageType.DIR, path=LOCAL_STORAGE_PATH)]
        if shared_dir is not None:
            storages.append(StorageConfig(id="shared", type=StorageType.SHARED_DIR,
                                          path=str(shared_dir)))
        for storage in storages:
            await admin.put_storage(storage)
        token = secrets.token_urlsafe(24)
        await admin.add_token(token)
    return token


async def create_cluster(config: HostConfig, services: Services, say: Say,
                         shared_dir: Path | None = None) -> Created:
    if config.role != "host":
        raise SetupError("role: a cluster is created on a host, not on a witness")
    if config.tls is None:
        raise SetupError("tls: a cluster's traffic is TLS; the host config has no TLS files")
    local.fresh_host(config)
    say(f"creating cluster {config.cluster} on {config.name} ({config.address})")
    ca_hash = write_pki(config)
    host_config.save(config)
    local.install(config, services)
    services.start([ETCD])
    await local.wait_etcd(config, say)
    say("turning etcd authentication on and recording the cluster")
    token = await seed(config, ca_hash, shared_dir, time.time())
    say("starting the watchdog, the agent and the API")
    local.start_rest(config, services)
    await local.wait_api(config, say)
    return Created(api_url=config.api_url, api_token=token, ca_file=config.tls.ca_cert)
