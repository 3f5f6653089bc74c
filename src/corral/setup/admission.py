"""Admitting a host or witness to the cluster: the cluster side of `corral cluster join` and
`corral witness setup`, and the join tokens they present.

A join, in order; everything that can refuse it runs before anything is written:
1. the token is checked against its record, the name against the members and hosts, the
   peer URL against the members, the CSR against the identity the cluster decides;
2. one etcd transaction, conditioned on the token record's mod revision and on the name
   being free, deletes the token (it is used once, also by two joins at the same moment)
   and claims the name with a ClusterHost record that has no member yet;
3. the etcd member is added as a learner (it cannot change the quorum while it catches up),
   its etcd user is added, and for a full host an admin certificate and an API token made;
4. the ClusterHost record gets its member; the reply is a `JoinBundle`;
5. in the background the learner is promoted to a voter once it has caught up (a witness
   could not do it itself: it has no root certificate).
A failure after the member was added removes it again, with its user and record: a member
that never starts blocks every later join.

The CA key is read from the pki directory for each join and kept nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.aio import cancel_and_wait
from corral.cluster import etcd_auth, keys, members, records
from corral.cluster.membership import Member, initial_cluster
from corral.cluster.models import ClusterHost, ClusterInfo, HostRole
from corral.cluster.records import dump
from corral.cluster.store import Store, token_digest
from corral.pki import ca as pki_ca
from corral.pki import certs, pem, tokens
from corral.pki.tokens import JoinToken, JoinTokenRecord
from corral.setup import join_rules, rejoin_rules
from corral.setup.join_rules import JoinBundle, JoinRequest, Refusal
from corral.setup.rejoin_rules import RejoinBundle

log = logging.getLogger(__name__)

# How long a learner may take to start and catch up before it is given up on (a small board
# joining over a slow link needs a while for a large database).
PROMOTE_WITHIN = 120.0
PROMOTE_EVERY = 1.0
TOKEN_ATTEMPTS = 5
ADMIN_CN = etcd_auth.ROOT


class AdmissionError(Exception):
    """A join (or token, or removal) refused; `refusal` says why and which field."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def refuse(refusal: Refusal | None) -> None:
    if refusal is not None:
        raise AdmissionError(refusal)


def unavailable(message: str) -> AdmissionError:
    return AdmissionError(Refusal("unavailable", message))


@dataclass(frozen=True)
class ClusterPKI:
    """The pki directory of a full host: ca.crt and ca.key (and host.*, admin.*)."""

    dir: Path

    def ca_cert_pem(self) -> bytes:
        try:
            return (self.dir / "ca.crt").read_bytes()
        except OSError as e:
            raise unavailable(f"the cluster CA certificate cannot be read: {e}") from e

    def ca_hash(self) -> str:
        return pki_ca.spki_sha256(pem.cert_from_pem(self.ca_cert_pem(), "ca.crt"))

    def ca(self) -> pki_ca.CA:
        try:
            return pki_ca.load_ca(self.dir / "ca.crt", self.dir / "ca.key")
        except (OSError, pem.PEMError) as e:
            raise unavailable(f"the cluster CA cannot be loaded ({e}): only a full host "
                              "with the CA key admits joins") from e


async def cluster_info(store: Store) -> ClusterInfo:
    info, _ = await store.get(keys.CLUSTER_INFO, ClusterInfo)
    if info is None:
        raise unavailable(f"the cluster has no {keys.CLUSTER_INFO} record: it was not made by "
                          "`corral cluster create`")
    return info


async def read_hosts(store: Store) -> tuple[dict[str, ClusterHost], set[str]]:
    """The hosts whose records decode, and every name taken (also by one that does not)."""
    items = await store.raw_prefix(keys.CLUSTER_HOSTS)
    return records.cluster_hosts_from(items)[0], records.cluster_host_names(items)


async def issue_token(store: Store, pki: ClusterPKI, ttl: float, purpose: HostRole,
                      now: float) -> tuple[JoinToken, JoinTokenRecord]:
    """A new join token, its record stored (hashed) under a fresh id."""
    ca_hash = pki.ca_hash()
    t = store.client.transactions
    for _ in range(TOKEN_ATTEMPTS):
        token = tokens.make_token(ca_hash)
        record = tokens.record_for(token, now, ttl, purpose)
        key = keys.join_token(token.id).encode()
        ok, _ = await store.client.transaction(
            compare=[t.version(key) == 0], success=[t.put(key, dump(record))], failure=[])
        # A timed-out write may have been applied: the record then is ours (same secret).
        if ok or (await store.get(key.decode(), JoinTokenRecord))[0] == record:
            return token, record
    raise unavailable("could not find a free token id; try again")


@dataclass
class Admission:
    """What admits joins: the store as this host (its records), the store as root
    (membership and users), and the pki directory with the CA key."""

    store: Store
    admin: Store
    pki: ClusterPKI
    promote_within: float = PROMOTE_WITHIN
    clock: Callable[[], float] = time.time
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    async def admit(self, req: JoinRequest) -> JoinBundle:
        now = self.clock()
        info = await cluster_info(self.store)
        ca = self.pki.ca()
        token = req.parsed_token
        token_key = keys.join_token(token.id)
        record, token_rev = await self.store.get(token_key, JoinTokenRecord)
        refuse(join_rules.token_refusal(token, record, req.role, pki_ca.spki_sha256(ca.cert),
                                        now))
        current = await members.list_members(self.admin)
        _, names = await read_hosts(self.store)
        refuse(join_rules.name_refusal(req.name, req.role, current, names))
        refuse(join_rules.membership_refusal(current, req.peer_url))
        try:
            cert = certs.sign(ca, certs.csr_from_pem(req.csr_pem.encode()), req.identity)
        except certs.CSRRefused as e:
            raise AdmissionError(Refusal("invalid", str(e), "csr_pem")) from e

        claim = ClusterHost(name=req.name, role=req.role, address=req.address,
                            peer_urls=[req.peer_url], client_urls=[req.client_url],
                            joined_at=now)
        await self._consume(token_key, token_rev, claim)
        try:
            new, after = await members.add_learner(self.admin, [req.peer_url])
        except members.MembershipError as e:
            await self._forget_claim(req.name)
            raise AdmissionError(Refusal("conflict", f"etcd refused the new member: {e} "
                                         "(the token is used up: make a new one)")) from e
        api_token: str | None = None
        try:
            pairs = initial_cluster(after, new.id, req.member_name)
            if req.role == "host":
                await etcd_auth.add_host(self.admin, req.name)
            else:
                await etcd_auth.add_witness(self.admin, req.name)
            bundle = JoinBundle(
                cluster=info.name, epoch=info.epoch, name=req.name, role=req.role,
                etcd_name=req.member_name, member_id=f"{new.id:x}",
                ca_cert_pem=pem.cert_pem(ca.cert).decode(),
                host_cert_pem=pem.cert_pem(cert).decode(),
                initial_cluster=join_rules.initial_cluster_text(pairs),
                etcd_endpoints=join_rules.etcd_endpoints(after, req.client_url))
            if req.role == "host":
                admin_key, admin_cert = certs.issue(ca, certs.Identity.of(ADMIN_CN))
                api_token = secrets.token_urlsafe(24)
                await self.store.add_token(api_token)
                bundle = bundle.model_copy(update={
                    "ca_key_pem": pem.key_pem(ca.key).decode(),
                    "admin_cert_pem": pem.cert_pem(admin_cert).decode(),
                    "admin_key_pem": pem.key_pem(admin_key).decode(),
                    "api_token": api_token})
            await self.store.put(keys.cluster_host(req.name),
                                 claim.model_copy(update={"member_id": new.id}))
        except Exception as e:
            log.warning("join of %s failed after its etcd member %x was added: %s; removing "
                        "it again", req.name, new.id, e)
            await self.forget(new, req.name, req.member_name, api_token)
            raise AdmissionError(Refusal(
                "unavailable", f"the join failed after its etcd member was added, which was "
                f"removed again: {e} (the token is used up: make a new one)")) from e
        log.info("admitted %s %s at %s as etcd learner %x", req.role, req.name, req.address,
                 new.id)
        self._in_background(self._promote(new, req.name, req.member_name))
        return bundle

    async def readmit(self, cn: str | None) -> RejoinBundle:
        """Take back a host the cluster was rebuilt without (`corral cluster rejoin`): `cn`
        is the CN of the client certificate the TLS handshake verified. Its etcd member is
        added again as a learner at its recorded peer URL, its etcd user again (an override
        removed it), its record names the new member; promoted in the background."""
        info = await cluster_info(self.store)
        current = await members.list_members(self.admin)
        hosts, _ = await read_hosts(self.store)
        refuse(rejoin_rules.rejoin_refusal(cn, hosts, current))
        assert cn is not None
        host = rejoin_rules.host_of(cn, hosts)
        assert host is not None
        for stale in rejoin_rules.leftovers(host, current):
            log.warning("rejoin of %s: removing etcd member %x that an earlier attempt added "
                        "and never started", host.name, stale.id)
            await members.remove(self.admin, stale.id)
        try:
            new, after = await members.add_learner(self.admin, host.peer_urls)
        except members.MembershipError as e:
            raise AdmissionError(Refusal("conflict", f"etcd refused the member: {e}")) from e
        try:
            pairs = initial_cluster(after, new.id, cn)
            if host.role == "host":
                await etcd_auth.add_host(self.admin, host.name)
            else:
                await etcd_auth.add_witness(self.admin, host.name)
            await self.store.put(keys.cluster_host(host.name),
                                 host.model_copy(update={"member_id": new.id}))
        except Exception as e:
            log.warning("rejoin of %s failed after its etcd member %x was added: %s; removing "
                        "it again", host.name, new.id, e)
            with contextlib.suppress(Exception):
                await members.remove(self.admin, new.id)
            raise AdmissionError(Refusal("unavailable", f"the rejoin failed after its etcd "
                                         f"member was added, which was removed again: {e}")) \
                from e
        log.info("took back %s %s as etcd learner %x", host.role, host.name, new.id)
        self._in_background(self._promote_rejoined(new, host.name))
        return RejoinBundle(
            cluster=info.name, epoch=info.epoch, name=host.name, role=host.role,
            etcd_name=cn, member_id=f"{new.id:x}",
            initial_cluster=join_rules.initial_cluster_text(pairs),
            etcd_endpoints=join_rules.etcd_endpoints(after, host.client_urls[0]))

    async def _promote_rejoined(self, member: Member, name: str) -> None:
        """As `_promote`, but a member that never starts is only removed: the host stays
        recorded, and may try again."""
        try:
            await members.promote(self.admin, member.id, within=self.promote_within,
                                  every=PROMOTE_EVERY)
            log.info("%s (etcd member %x) caught up and is a voter again", name, member.id)
        except Exception as e:
            log.warning("%s (etcd member %x) was not promoted: %s", name, member.id, e)

    async def _consume(self, token_key: str, token_rev: int, claim: ClusterHost) -> None:
        """Delete the token and claim the name, at once and only if neither changed since
        they were read."""
        t = self.store.client.transactions
        host_key = keys.cluster_host(claim.name).encode()
        ok, _ = await self.store.client.transaction(
            compare=[t.mod(token_key.encode()) == token_rev, t.version(host_key) == 0],
            success=[t.delete(token_key.encode()), t.put(host_key, dump(claim))],
            failure=[])
        if ok:
            return
        mine, _ = await self.store.get(host_key.decode(), ClusterHost)
        if mine == claim:  # a timed-out write that was applied: the claim carries our time
            return
        if mine is not None:
            refuse(Refusal("conflict", f"name: {claim.name!r} was claimed by another join "
                           "just now", "name"))
        refuse(Refusal("token", "token: unknown or already used (a token admits one join)",
                       "token"))

    async def _forget_claim(self, name: str) -> None:
        with contextlib.suppress(Exception):
            await self.store.delete(keys.cluster_host(name))

    async def forget(self, member: Member, name: str, user: str,
                     api_token: str | None = None) -> None:
        """Undo a join: its member, its etcd user, its record (and API token). Each step is
        tried even when one before failed; what is left is logged."""
        steps = [("remove etcd member", members.remove(self.admin, member.id)),
                 ("remove etcd user", etcd_auth.remove_user(self.admin, user))]
        if api_token is not None:
            steps.append(("delete API token",
                          self.store.delete(keys.token(token_digest(api_token)))))
        steps.append(("delete host record", self.store.delete(keys.cluster_host(name))))
        for what, step in steps:
            try:
                await step
            except Exception as e:
                log.error("undoing the join of %s: %s failed: %s", name, what, e)

    async def _promote(self, member: Member, name: str, user: str) -> None:
        try:
            await members.promote(self.admin, member.id, within=self.promote_within,
                                  every=PROMOTE_EVERY)
            log.info("%s (etcd member %x) caught up and is a voter", name, member.id)
            return
        except members.MembershipError as e:
            problem = str(e)
        except Exception as e:  # etcd unreachable: nothing to decide on
            log.warning("%s (etcd member %x) was not promoted: %s", name, member.id, e)
            return
        try:
            now = [m for m in await members.list_members(self.admin) if m.id == member.id]
        except members.MembershipError as e:
            log.warning("%s (etcd member %x) was not promoted (%s), and the members cannot be "
                        "listed: %s", name, member.id, problem, e)
            return
        if now and not now[0].started:
            log.warning("%s (etcd member %x) did not start within %.0fs: removing it, it would "
                        "block every later join (%s)", name, member.id, self.promote_within,
                        problem)
            await self.forget(member, name, user)
        else:
            log.warning("%s (etcd member %x) was not promoted: %s", name, member.id, problem)

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Stop promotions still waiting (the API shuts down)."""
        await cancel_and_wait(list(self._background))
