"""The API's access log: a line per request it served that changed something or failed, and
refusals counted into one line every few seconds.

uvicorn's own access log wrote a line for every request, the refused ones included. Under
load that is the wrong trade: journald keeps at most 10,000 lines per service in 30 s by
default, so at a few hundred requests a second the reads' lines crowd out, and get dropped
with, the warnings that matter; and a refused request's line cost a third of its refusal
(py-spy, 500 requests/s). Reads that succeeded are logged only with `--access-log all`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from corral.api.wire import AccessLog

if TYPE_CHECKING:
    from starlette.types import Scope

log = logging.getLogger("corral.api.access")

# Methods that only read: not logged when they succeed, unless every request is asked for.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# At most one line of refusals this often, however many there are.
REFUSALS_EVERY_SECONDS = 10.0


def worth_a_line(mode: AccessLog, method: str, status: int) -> bool:
    """Whether a served request gets its own line."""
    if mode is AccessLog.ALL:
        return True
    if mode is AccessLog.NONE:
        return False
    return method not in READ_METHODS or status >= 500


def served(mode: AccessLog, scope: Scope, status: int, seconds: float) -> None:
    """Log one served request, if `mode` asks for it: who, what, the status, how long."""
    method = scope["method"]
    if not worth_a_line(mode, method, status):
        return
    client = scope.get("client")
    who = f"{client[0]}:{client[1]}" if client else "-"
    query = scope.get("query_string") or b""
    target = scope["path"] + ("?" + query.decode("latin-1") if query else "")
    log.info('%s "%s %s" %d %.1f ms', who, method, target, status, seconds * 1000)


Schedule = Callable[[float, Callable[[], None]], object]


class RefusalLog:
    """Counts refusals and writes them as one line at most every `every` seconds: the first
    refusal after a quiet spell at once, the rest when the interval is up. `schedule(delay,
    callback)` arms the timer (the event loop's call_later); `clock` is monotonic seconds."""

    def __init__(self, every: float = REFUSALS_EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self.pending = 0
        self._since = 0.0  # when the first refusal not written yet came (with pending > 0)
        self._written_at = float("-inf")
        self._armed = False
        self._places = 0

    def refused(self, places: int, schedule: Schedule) -> None:
        now = self.clock()
        self.pending += 1
        self._places = places
        if self.pending == 1:
            self._since = now
        if self._armed:
            return
        wait = self._written_at + self.every - now
        if wait <= 0:
            self.flush()
        else:
            self._armed = True
            schedule(wait, self._timer)

    def _timer(self) -> None:
        self._armed = False
        self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        now = self.clock()
        if self.pending == 1:
            log.warning("refused a request with 503: every place (%d) was taken; the bound "
                        "follows latency, up to --max-in-flight", self._places)
        else:
            log.warning("refused %d requests with 503 in %.1f s: every place (%d) was taken; "
                        "the bound follows latency, up to --max-in-flight",
                        self.pending, now - self._since, self._places)
        self.pending = 0
        self._written_at = now
