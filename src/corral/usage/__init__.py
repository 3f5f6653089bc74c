"""Usage history of hosts and VMs, kept by each host's agent (docs/usage-history.md).

`rrd`: samples consolidated into fixed-size archives (pure); `figures`: what one sample is,
from two readings of the host's or a QEMU process's counters (pure); `readings`: those
readings, from /proc and psutil.
"""
