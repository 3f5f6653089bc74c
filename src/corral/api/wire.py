"""What the API and its clients agree on, with no dependency: the CLI imports this without
loading FastAPI."""

from __future__ import annotations

from enum import StrEnum

# Keys of the records a list answer left out because they do not decode.
SKIPPED_HEADER = "Corral-Skipped-Records"
# Where a list answer says the cursor of its next page.
NEXT_CURSOR_HEADER = "Corral-Next-Cursor"
# A page bigger than this is refused rather than served: one answer must stay cheap enough to
# build that it cannot hold the API's event loop for long.
MAX_LIMIT = 1000
# Measured on a 2-core machine (docs/api.md, "Figures"): unbounded, 1600 GETs/s offered left
# 20/s served and 94 % timed out. Reads come from memory, so a request in flight mostly waits
# for the CPU: at 500 mixed requests/s, 16 at once served more than 64 did, with admitted
# requests at a quarter of the latency.
DEFAULT_MAX_IN_FLIGHT = 16


class AccessLog(StrEnum):
    """Which served requests the API logs a line for (api/access_log.py)."""

    CHANGES = "changes"  # requests that may change something, and every answer of 500 or more
    ALL = "all"
    NONE = "none"
