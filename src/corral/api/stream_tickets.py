"""Short-lived, single-use tickets that open an events stream.

A browser's EventSource cannot send an Authorization header, and an API token in a URL ends
up in access logs, proxies' logs and the browser's history. So the console trades its token
(in a header, `POST /api/v1/events/ticket`) for a ticket that it puts in the stream's URL:
logged or not, a ticket opens one stream within seconds of being issued, then never again.
Tickets live in the API process that issued them (a console talks to one API). A ticket may
carry the token it was traded for: the serial console's relay shows it to the VM's agent, as
it would a token from a header. Pure: the caller passes the time.
"""

from __future__ import annotations

import secrets

TICKET_SECONDS = 30.0
MAX_TICKETS = 1024  # outstanding at once; issuing more forgets the oldest


class StreamTickets:
    def __init__(self, ttl: float = TICKET_SECONDS, limit: int = MAX_TICKETS) -> None:
        self.ttl = ttl
        self.limit = limit
        self._expires: dict[str, tuple[float, str]] = {}  # in issue order, with its token

    def issue(self, now: float, token: str = "") -> str:
        self._forget_expired(now)
        while len(self._expires) >= self.limit:
            del self._expires[next(iter(self._expires))]
        ticket = secrets.token_urlsafe(24)
        self._expires[ticket] = (now + self.ttl, token)
        return ticket

    def redeem(self, ticket: str, now: float) -> bool:
        """True once for a ticket issued less than ttl ago; it is spent either way."""
        return self.redeem_token(ticket, now) is not None

    def redeem_token(self, ticket: str, now: float) -> str | None:
        """The token a ticket issued less than ttl ago was traded for ("" if none), once;
        None for a ticket unknown, spent or expired. It is spent either way."""
        entry = self._expires.pop(ticket, None)
        if entry is None or now >= entry[0]:
            return None
        return entry[1]

    def __len__(self) -> int:
        return len(self._expires)

    def _forget_expired(self, now: float) -> None:
        for ticket in [t for t, (exp, _) in self._expires.items() if exp <= now]:
            del self._expires[ticket]
