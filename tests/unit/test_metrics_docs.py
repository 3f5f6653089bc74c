"""docs/metrics.md lists exactly the metrics Corral exposes, and the sample dashboard queries
no metric that does not exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from corral.metrics import names

DOCS = Path(__file__).resolve().parents[2] / "docs"
NAME = re.compile(r"\bcorral_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_count", "_sum", "_gcount", "_gsum")


def base(series: str) -> str:
    """The metric a series belongs to (a histogram's _bucket, _count... series)."""
    declared = {s.name for s in names.ALL}
    if series in declared:
        return series
    for suffix in SUFFIXES:
        if series.endswith(suffix) and series.removesuffix(suffix) in declared:
            return series.removesuffix(suffix)
    return series


def test_the_docs_list_every_metric_and_no_other() -> None:
    text = (DOCS / "metrics.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r"^\| `(corral_[a-z0-9_]+)` \| ([a-z ()]+) \|", text, re.MULTILINE)}
    assert sorted(rows) == sorted(s.name for s in names.ALL)
    for spec in names.ALL:
        documented = rows[spec.name].replace(" (current state)", "")
        assert documented == spec.type.replace("gaugehistogram", "gauge histogram"), spec.name
    assert {base(n) for n in NAME.findall(text)} <= {s.name for s in names.ALL}


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_the_sample_dashboard_is_a_dashboard_over_known_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    assert dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        assert set(p["gridPos"]) == {"h", "w", "x", "y"} and p["gridPos"]["x"] + \
            p["gridPos"]["w"] <= 24, p["title"]
    used = {base(n) for e in exprs(dashboard) for n in NAME.findall(e)}
    assert used <= {s.name for s in names.ALL}, used - {s.name for s in names.ALL}
    # The panels the docs promise.
    for wanted in ("corral_host_cpu_usage_ratio", "corral_host_memory_used_bytes",
                   "corral_vms", "corral_ha_vms", "corral_ha_hosts",
                   "corral_tasks_finished_last_hour", "corral_api_request_duration_seconds",
                   "corral_etcd_request_duration_seconds",
                   "corral_manager_decide_duration_seconds"):
        assert wanted in used, wanted
