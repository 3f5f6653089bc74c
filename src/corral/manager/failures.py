"""How a loop that retries every second logs its failures: a manager cut off from etcd fails
every tick until it loses the lead, and a traceback a second buries what came before it."""

from __future__ import annotations

import logging


class RepeatedFailures:
    """The first failure of a run, or one unlike the last, is logged with its traceback; the
    same failure again is one line with its count. Call `failed` inside the `except` block."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.last: str | None = None
        self.count = 0

    def failed(self, error: BaseException) -> None:
        said = f"{type(error).__name__}: {error}"
        if said == self.last:
            self.count += 1
            self.log.warning("%s failed again (%d in a row): %s", self.what, self.count, said)
            return
        self.last, self.count = said, 1
        self.log.exception("%s failed", self.what)

    def succeeded(self) -> None:
        if self.last is not None:
            self.log.info("%s works again (it had failed %d in a row)", self.what, self.count)
        self.last, self.count = None, 0
