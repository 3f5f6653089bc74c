"""Bearer-token checks against the API's view of the cluster: a token etcd holds is in the
view (a revoked one leaves it as soon as the watch brings the delete), so a request costs no
etcd read; one the view lacks is looked up in etcd, as it may have been made a moment ago."""

from __future__ import annotations

from corral.api.errors import ApiError
from corral.cluster import keys
from corral.cluster.store import Store, token_digest
from corral.cluster.view import ClusterView


class TokenChecker:
    def __init__(self, store: Store, view: ClusterView) -> None:
        self.store = store
        self.view = view

    async def check(self, authorization: str | None) -> str:
        """The token from an Authorization header, or ApiError 401."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer ...)")
        if keys.token(token_digest(token)) in self.view.state.raw:
            return token
        if not await self.store.token_valid(token):
            raise ApiError(401, "unauthorized", "invalid token")
        return token
