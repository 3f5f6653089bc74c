"""`corral cluster join` and `corral witness setup`: a host (or witness) joins a cluster.

The join token carries the hash of the cluster CA. The joining host fetches the CA from the
address it was given without trusting it yet, checks its hash against the token, and from
then on trusts that CA alone: whoever sits in between can neither pose as the cluster nor
read the join. It sends a certificate request for exactly the identity the cluster will
sign, starts its etcd member with the cluster's member list, waits to be promoted from
learner to voter, then starts its other services.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from corral.cluster.records import what_is_wrong
from corral.host import config as host_config
from corral.host.commands import ETCD
from corral.host.config import API_PORT, HostConfig
from corral.host.services import Services
from corral.pki import ca as pki_ca
from corral.pki import certs, pem, tokens
from corral.setup import local
from corral.setup.join_rules import JoinBundle, JoinRequest, host_identity
from corral.setup.local import Say, SetupError

TIMEOUT = 30.0  # the admitting API adds an etcd member: etcd may take a few seconds
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Joined:
    cluster: str
    api_url: str | None  # None for a witness: it runs no API
    api_token: str | None
    ca_file: str


def server_url(server: str) -> str:
    """`10.0.0.1`, `10.0.0.1:8470` or a URL -> the API's https base URL."""
    if "://" in server:
        if not server.startswith("https://"):
            raise SetupError(f"server: {server!r}: a join speaks https only")
        return server.rstrip("/")
    host, sep, port = server.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return f"https://{server}"
    return f"https://{server}:{API_PORT}"


def _refusal(reply: httpx.Response) -> str:
    try:
        err = reply.json()["error"]
        return str(err.get("message") or err)
    except (ValueError, KeyError, TypeError):
        return f"HTTP {reply.status_code}: {reply.text[:200]}"


def fetch_ca(base: str, token: tokens.JoinToken) -> bytes:
    """The cluster CA as the server shows it, checked against the token's hash."""
    try:
        # Not verified yet on purpose: what it shows is checked against the token below.
        reply = httpx.get(f"{base}/api/v1/cluster/ca", verify=False, timeout=TIMEOUT)  # noqa: S501
    except httpx.HTTPError as e:
        raise SetupError(f"server: cannot reach the cluster's API at {base}: {e}") from e
    if reply.status_code != 200:
        raise SetupError(f"server: {base} did not show its CA: {_refusal(reply)}")
    try:
        ca_pem = str(reply.json()["ca_pem"]).encode()
        ca_cert = pem.cert_from_pem(ca_pem, "the cluster CA")
    except (ValueError, KeyError, TypeError) as e:
        raise SetupError(f"server: {base} showed no usable CA: {e}") from e
    problem = tokens.check_ca(token, pki_ca.spki_sha256(ca_cert))
    if problem is not None:
        raise SetupError(problem)
    return ca_pem


def ask_to_join(base: str, ca_pem: bytes, request: JoinRequest) -> JoinBundle:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    try:
        reply = httpx.post(f"{base}/api/v1/cluster/join", json=request.model_dump(mode="json"),
                           verify=ctx, timeout=TIMEOUT)
    except httpx.HTTPError as e:
        raise SetupError(f"server: the join request to {base} failed: {e}") from e
    return read_reply(reply, JoinBundle, "join")


def read_reply(reply: httpx.Response, model: type[M], what: str) -> M:
    """The cluster's answer to a join or rejoin, or SetupError with its refusal."""
    if reply.status_code != 200:
        raise SetupError(f"the cluster refused the {what}: {_refusal(reply)}")
    try:
        return model.model_validate(reply.json())
    except (ValueError, ValidationError) as e:
        detail = what_is_wrong(e) if isinstance(e, ValidationError) else str(e)
        raise SetupError(f"server: the {what} reply does not read: {detail}") from e


def write_bundle(config: HostConfig, bundle: JoinBundle, key_pem: bytes) -> None:
    tls = config.tls
    assert tls is not None
    pem.write_cert(tls.ca_cert, pem.cert_from_pem(bundle.ca_cert_pem.encode(), "CA"))
    pem.write_cert(tls.cert, pem.cert_from_pem(bundle.host_cert_pem.encode(), "host"))
    pem.write_key(tls.key, pem.key_from_pem(key_pem))
    if config.role == "host":
        if not (bundle.ca_key_pem and bundle.admin_cert_pem and bundle.admin_key_pem
                and tls.ca_key and tls.admin_cert and tls.admin_key):
            raise SetupError("server: the join reply of a host lacks the CA key or the admin "
                             "certificate")
        pem.write_key(tls.ca_key, pem.key_from_pem(bundle.ca_key_pem.encode(), "CA key"))
        pem.write_cert(tls.admin_cert,
                       pem.cert_from_pem(bundle.admin_cert_pem.encode(), "admin"))
        pem.write_key(tls.admin_key, pem.key_from_pem(bundle.admin_key_pem.encode(), "admin key"))


async def join_cluster(server: str, token_text: str, config: HostConfig, services: Services,
                       say: Say) -> Joined:
    if config.tls is None:
        raise SetupError("tls: a cluster's traffic is TLS; the host config has no TLS files")
    try:
        token = tokens.parse_token(token_text)
    except tokens.TokenError as e:
        raise SetupError(str(e)) from None
    local.fresh_host(config)
    base = server_url(server)
    say(f"checking the cluster CA at {base} against the token")
    ca_pem = fetch_ca(base, token)
    key = certs.make_key()
    csr = certs.make_csr(key, host_identity(config.name, config.role, config.address))
    request = JoinRequest(token=token_text, name=config.name, role=config.role,
                          address=config.address, etcd_peer_port=config.etcd_peer_port,
                          etcd_client_port=config.etcd_client_port,
                          csr_pem=certs.csr_pem(csr).decode())
    say(f"asking to join as {config.role} {config.name}")
    bundle = ask_to_join(base, ca_pem, request)
    if bundle.etcd_name != config.member_name:
        raise SetupError(f"server: the cluster named the member {bundle.etcd_name!r}, this "
                         f"host expected {config.member_name!r}")
    config = config.model_copy(update={
        "cluster": bundle.cluster, "etcd_endpoints": bundle.etcd_endpoints,
        "initial_cluster": bundle.initial_cluster, "initial_cluster_state": "existing"})
    config = HostConfig.model_validate(config.model_dump())  # the checks, on the new values
    write_bundle(config, bundle, pem.key_pem(key))
    host_config.save(config)
    local.install(config, services)
    services.start([ETCD])
    await local.wait_voter(config, say)
    if config.role == "host":
        say("starting the watchdog, the agent and the API")
    local.start_rest(config, services)
    if config.role == "host":
        await local.wait_api(config, say)
    return Joined(cluster=bundle.cluster,
                  api_url=config.api_url if config.role == "host" else None,
                  api_token=bundle.api_token, ca_file=str(local.host_tls(config).ca))
