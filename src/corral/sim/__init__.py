"""A simulator with a virtual clock: simulated hosts, agents, store and watchdogs around the
real, pure manager decisions. Used by the scenario tests and `corral sim run`."""
