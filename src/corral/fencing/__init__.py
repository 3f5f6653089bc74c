"""Fencing: a host that cannot renew its lease is fenced before the lease expires.

The agent arms its host's watchdog (fencing.client), gets the worst-case fence time
acknowledged and publishes it, then feeds the watchdog after every successful renewal. In the
lab, the watchdog is a separate process per host that kills the host's QEMU processes
(fencing.labdog); in production, a mux (fencing.mux) shares the kernel watchdog device
(fencing.device) among local clients. Both speak fencing.protocol; fencing.timing has the
figures.
"""
