"""Join tokens: `<id>.<secret>.<cahash>`, what an admin hands to a host that joins.

- id: 6 of [a-z0-9], names the token's record in etcd (/corral/cluster/join-tokens/<id>);
- secret: 16 of [a-z0-9], stored only as its sha256;
- cahash: the sha256 hex of the cluster CA's SubjectPublicKeyInfo (`ca.spki_sha256`), with
  which the joining host checks the CA it is shown before it trusts anything it is told.

Pure: no I/O, the clock and the random source come in as arguments.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from corral.cluster.models import Record

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
ID_LEN = 6
SECRET_LEN = 16
_ID_RE = re.compile(rf"^[a-z0-9]{{{ID_LEN}}}$")
_SECRET_RE = re.compile(rf"^[a-z0-9]{{{SECRET_LEN}}}$")
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")

Purpose = Literal["host", "witness"]
Choice = Callable[[Sequence[str]], str]


class TokenError(ValueError):
    """A token that does not parse; the message names the part that is wrong."""


@dataclass(frozen=True)
class JoinToken:
    id: str
    secret: str
    ca_hash: str

    def __str__(self) -> str:
        return f"{self.id}.{self.secret}.{self.ca_hash}"

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"JoinToken(id={self.id!r}, secret=<hidden>, ca_hash={self.ca_hash!r})"


def make_token(ca_hash: str, choice: Choice = secrets.choice) -> JoinToken:
    if not _HASH_RE.match(ca_hash):
        raise TokenError("token: the CA hash must be 64 lowercase hex digits")
    return JoinToken("".join(choice(ALPHABET) for _ in range(ID_LEN)),
                     "".join(choice(ALPHABET) for _ in range(SECRET_LEN)), ca_hash)


def parse_token(text: str) -> JoinToken:
    parts = text.strip().split(".")
    if len(parts) != 3:
        raise TokenError(f"token: expected <id>.<secret>.<cahash>, found {len(parts)} "
                         f"part{'s' if len(parts) != 1 else ''} separated by '.'")
    tid, secret, ca_hash = parts
    if not _ID_RE.match(tid):
        raise TokenError(f"token: the id must be {ID_LEN} of a-z and 0-9, not {tid!r}")
    if not _SECRET_RE.match(secret):  # never echoed: it is the secret
        raise TokenError(f"token: the secret must be {SECRET_LEN} of a-z and 0-9 "
                         f"(it has {len(secret)} characters)")
    if not _HASH_RE.match(ca_hash):
        raise TokenError(f"token: the CA hash must be 64 lowercase hex digits "
                         f"(it has {len(ca_hash)} characters)")
    return JoinToken(tid, secret, ca_hash)


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class JoinTokenRecord(Record):
    """A join token as etcd keeps it: the secret only hashed. Used once: the join that
    accepts it deletes it in the same transaction."""

    id: str = Field(pattern=_ID_RE.pattern)
    secret_sha256: str = Field(pattern=_HASH_RE.pattern)
    expires_at: float  # unix seconds
    created_at: float
    purpose: Purpose = "host"


def record_for(token: JoinToken, now: float, ttl: float,
               purpose: Purpose = "host") -> JoinTokenRecord:
    return JoinTokenRecord(id=token.id, secret_sha256=secret_sha256(token.secret),
                           expires_at=now + ttl, created_at=now, purpose=purpose)


def check(record: JoinTokenRecord, token: JoinToken, now: float) -> str | None:
    """Why `token` does not admit a join under `record` at `now`, or None when it does."""
    # Compared in constant time first, so how long a refusal takes says nothing of the secret.
    secret_ok = hmac.compare_digest(record.secret_sha256, secret_sha256(token.secret))
    if record.id != token.id:
        return f"token: id {token.id!r} is not this record's ({record.id!r})"
    if not secret_ok:
        return "token: wrong secret"
    if now >= record.expires_at:
        return f"token: expired {now - record.expires_at:.0f}s ago"
    return None


def check_ca(token: JoinToken, ca_hash: str) -> str | None:
    """Why the CA a joining host was shown is not the one its token names, or None."""
    if not hmac.compare_digest(token.ca_hash, ca_hash.lower()):
        return (f"token: the cluster's CA hash is {ca_hash}, the token names {token.ca_hash}:"
                " not the cluster the token was made for (or someone in between)")
    return None
