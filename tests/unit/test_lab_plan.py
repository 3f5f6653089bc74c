"""The supervisor's plan of child processes and its restart backoff (pure)."""

from __future__ import annotations

from pathlib import Path

from corral.lab.layout import LabLayout
from corral.lab.supervisor import BACKOFF_MAX, backoff, plan_children


def arg(argv: tuple[str, ...], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_plan_starts_etcd_then_agents_then_the_api() -> None:
    lab = LabLayout(Path("/lab"), nodes=2, accel="tcg", images_dir=Path("/img"),
                    watchdog_timeout=0)
    plan = plan_children(lab, python="/py")
    assert [c.name for c in plan] == ["n1-etcd", "n2-etcd", "n1-agent", "n2-agent", "api"]
    assert [c.role for c in plan] == ["etcd", "etcd", "agent", "agent", "api"]
    assert [c.host for c in plan] == ["n1", "n2", "n1", "n2", None]
    assert all(c.restart and c.env["CORRAL_LAB"] == "/lab" for c in plan)
    assert plan[0].log == Path("/lab/logs/n1-etcd.log")
    assert arg(plan[1].argv, "--initial-cluster") == (
        "n1=http://127.0.0.1:23901,n2=http://127.0.0.1:23902"
    )


def test_agent_and_api_command_lines() -> None:
    lab = LabLayout(Path("/lab"), nodes=2, accel="tcg", images_dir=Path("/img"),
                    watchdog_timeout=0)
    agent = plan_children(lab, python="/py")[3].argv
    assert agent[:5] == ("/py", "-m", "corral.cli.main", "agent", "run")
    assert arg(agent, "--node") == "n2"
    assert arg(agent, "--data-dir") == "/lab/nodes/n2"
    assert arg(agent, "--images-dir") == "/img"
    assert arg(agent, "--etcd") == "http://127.0.0.1:23802,http://127.0.0.1:23801"
    assert arg(agent, "--listen") == "127.0.0.1:24002"
    assert arg(agent, "--accel") == "tcg"
    assert "--watchdog-socket" not in agent
    api = plan_children(lab, python="/py")[4].argv
    assert api[3:5] == ("api", "serve")
    assert arg(api, "--etcd") == "http://127.0.0.1:23801,http://127.0.0.1:23802"
    assert (arg(api, "--host"), arg(api, "--port")) == ("127.0.0.1", "8470")


def test_plan_without_agents_and_api_takes_extra_children() -> None:
    lab = LabLayout(Path("/lab"), nodes=1)
    plan = plan_children(lab, agents=False, api=False, extra=[("dummy", ["sleep", "1000"])])
    assert [(c.name, c.role) for c in plan] == [("n1-etcd", "etcd"), ("dummy", "other")]
    assert plan[1].argv == ("sleep", "1000")


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff(50) == BACKOFF_MAX


def test_each_host_gets_a_watchdog_its_agent_feeds() -> None:
    lab = LabLayout(Path("/lab"), nodes=2, lease_ttl=6, watchdog_timeout=4)
    plan = {c.name: c for c in plan_children(lab, python="/py")}
    assert list(plan)[2:4] == ["n1-watchdog", "n2-watchdog"]  # before the agents
    dog = plan["n2-watchdog"]
    assert (dog.role, dog.host) == ("watchdog", "n2")
    assert dog.argv[:3] == ("/py", "-m", "corral.fencing.labdog")
    assert arg(dog.argv, "--run-dir") == "/lab/nodes/n2/run"
    assert arg(dog.argv, "--socket") == "/lab/nodes/n2/watchdog.sock"
    assert arg(dog.argv, "--timeout") == "4"
    agent = plan["n2-agent"].argv
    assert arg(agent, "--watchdog-socket") == "/lab/nodes/n2/watchdog.sock"
    assert (arg(agent, "--watchdog-timeout"), arg(agent, "--lease-ttl")) == ("4", "6")


def test_netns_hosts_run_in_their_namespace_on_their_address() -> None:
    lab = LabLayout(Path("/lab"), nodes=2, base_port=30000, netns=True)
    plan = {c.name: c for c in plan_children(lab, python="/py")}
    prefix = ("ip", "netns", "exec", "corral-234-n2")
    for name in ("n2-etcd", "n2-watchdog", "n2-agent"):
        assert plan[name].argv[:4] == prefix
    assert arg(plan["n2-etcd"].argv, "--listen-client-urls") == "http://198.18.234.2:30002"
    assert arg(plan["n2-agent"].argv, "--listen") == "198.18.234.2:30202"
    api = plan["api"].argv
    assert api[0] == "/py"  # the API stays in the root namespace
    assert arg(api, "--etcd") == "http://198.18.234.1:30001,http://198.18.234.2:30002"
