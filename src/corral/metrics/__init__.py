"""Prometheus metrics: the cluster's state as seen in one snapshot (`cluster`, pure), and
this process's own timings (`instruments`: API requests, etcd requests, manager passes).
Every metric name and help text is in `names`; docs/metrics.md describes them."""
