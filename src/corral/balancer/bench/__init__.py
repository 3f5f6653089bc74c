"""The balancer benchmark: workloads, contenders and the simulator (bench/balance.py)."""
