"""Bearer-token checks, with a short cache so most requests cost no etcd read."""

from __future__ import annotations

import time

from corral.api.errors import ApiError
from corral.cluster.store import Store

CACHE_SECONDS = 5.0


class TokenChecker:
    def __init__(self, store: Store, ttl: float = CACHE_SECONDS) -> None:
        self.store = store
        self.ttl = ttl
        self._valid_until: dict[str, float] = {}

    async def check(self, authorization: str | None) -> str:
        """The token from an Authorization header, or ApiError 401."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer ...)")
        now = time.monotonic()
        if self._valid_until.get(token, 0.0) > now:
            return token
        # Only valid tokens are cached: a revoked token stops working within ttl seconds.
        if not await self.store.token_valid(token):
            self._valid_until.pop(token, None)
            raise ApiError(401, "unauthorized", "invalid token")
        if len(self._valid_until) > 1000:
            self._valid_until.clear()
        self._valid_until[token] = now + self.ttl
        return token
