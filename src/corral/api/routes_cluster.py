"""The cluster's membership: its CA, join tokens, joins, status and removal of members.

`GET /cluster/ca`, `POST /cluster/join` and `POST /cluster/rejoin` take no bearer token: a
joining host has none yet. It checks the CA's hash against its join token before it trusts
anything it is told, and the join token in its request is its credential; a rejoining host's
credential is its own certificate. Admitting and removing members needs the
cluster's pki directory (the CA key and the root certificate): an API started without one
(a lab without TLS) answers 503 saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel

from corral.api.errors import ApiError
from corral.api.peer import PeerDep
from corral.cluster import members
from corral.cluster.models import HostRole
from corral.cluster.store import Store
from corral.pki import ca as pki_ca
from corral.pki import pem
from corral.pki.files import TLSFiles
from corral.setup.admission import (
    Admission,
    AdmissionError,
    issue_token,
)
from corral.setup.join_rules import JoinBundle, JoinRequest, RefusalKind, TokenRequest
from corral.setup.member_removal import Removed, remove_member
from corral.setup.rejoin_rules import RejoinBundle
from corral.setup.status import gather as gather_status
from corral.setup.status_view import ClusterStatus

public = APIRouter()  # no bearer token
router = APIRouter()  # behind the bearer token

_STATUS: dict[RefusalKind, tuple[int, str]] = {
    "invalid": (422, "invalid"),
    "token": (403, "token_refused"),
    "forbidden": (403, "forbidden"),
    "conflict": (409, "conflict"),
    "not_found": (404, "not_found"),
    "unavailable": (503, "unavailable"),
}


@dataclass(frozen=True)
class ClusterAccess:
    """What the cluster routes work with. `admission` is None when this API cannot admit
    or remove members; `why_not` then says why."""

    store: Store
    tls: TLSFiles | None
    ca_file: Path | None
    admission: Admission | None
    why_not: str


async def get_access(request: Request) -> ClusterAccess:
    return cast(ClusterAccess, request.app.state.cluster)


AccessDep = Annotated[ClusterAccess, Depends(get_access)]


def admission_of(access: ClusterAccess) -> Admission:
    if access.admission is None:
        raise ApiError(503, "unavailable", access.why_not)
    return access.admission


@contextmanager
def refusals() -> Iterator[None]:
    """A refusal of the setup flows as the API's error shape."""
    try:
        yield
    except AdmissionError as e:
        code, name = _STATUS[e.refusal.kind]
        raise ApiError(code, name, e.refusal.message, e.refusal.field) from e
    except members.MembershipError as e:
        raise ApiError(503, "unavailable", f"etcd membership: {e}") from e


class CAOut(BaseModel):
    ca_pem: str
    ca_hash: str  # sha256 of its SubjectPublicKeyInfo: what a join token names


class TokenOut(BaseModel):
    token: str  # shown this once: only its hash is kept
    id: str
    purpose: HostRole
    expires_at: float


@public.get("/cluster/ca", response_model=CAOut, tags=["cluster"])
async def get_ca(access: AccessDep) -> CAOut:
    if access.ca_file is None:
        raise ApiError(503, "unavailable", access.why_not)
    try:
        data = access.ca_file.read_bytes()
        cert = pem.cert_from_pem(data, str(access.ca_file))
    except (OSError, pem.PEMError) as e:
        raise ApiError(503, "unavailable", f"the cluster CA cannot be read: {e}") from e
    return CAOut(ca_pem=data.decode(), ca_hash=pki_ca.spki_sha256(cert))


@public.post("/cluster/join", response_model=JoinBundle, tags=["cluster"])
async def join(body: JoinRequest, access: AccessDep) -> JoinBundle:
    admission = admission_of(access)
    with refusals():
        return await admission.admit(body)


@public.post("/cluster/rejoin", response_model=RejoinBundle, tags=["cluster"])
async def rejoin(access: AccessDep, cn: PeerDep) -> RejoinBundle:
    """A host the cluster was rebuilt without asks to be taken back; its credential is its
    own certificate, verified by the TLS handshake (no bearer token: it has none)."""
    admission = admission_of(access)
    with refusals():
        return await admission.readmit(cn)


@router.post("/cluster/tokens", response_model=TokenOut, status_code=status.HTTP_201_CREATED,
             tags=["cluster"])
async def create_token(body: TokenRequest, access: AccessDep) -> TokenOut:
    admission = admission_of(access)
    with refusals():
        token, record = await issue_token(access.store, admission.pki, body.ttl_seconds,
                                          body.purpose, admission.clock())
    return TokenOut(token=str(token), id=token.id, purpose=record.purpose,
                    expires_at=record.expires_at)


@router.get("/cluster/status", response_model=ClusterStatus, tags=["cluster"])
async def cluster_status(access: AccessDep) -> ClusterStatus:
    with refusals():
        return await gather_status(access.store, access.tls)


@router.delete("/cluster/members/{name}", response_model=Removed, tags=["cluster"])
async def delete_member(name: str, access: AccessDep) -> Removed:
    admission = admission_of(access)
    with refusals():
        return await remove_member(access.store, admission.admin, name, access.tls)
