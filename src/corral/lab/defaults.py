"""A lab's defaults, apart from the layout so that the CLI's help shows them without loading
the lab's code."""

DEFAULT_BASE_PORT = 23800
DEFAULT_API_PORT = 8470
DEFAULT_NODES = 3
DEFAULT_LEASE_TTL = 9
DEFAULT_WATCHDOG_TIMEOUT = 6.0
