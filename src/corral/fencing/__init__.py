"""Fencing: a host that cannot renew its lease stops its VMs before the lease expires.

The agent feeds a watchdog after every successful renewal (fencing.client). In the lab, the
watchdog is a separate process per host that kills the host's QEMU processes (fencing.labdog);
in production, a mux (fencing.mux) shares the kernel watchdog device among local clients.
"""
