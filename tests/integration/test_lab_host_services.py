"""The lab supervisor in cluster mode runs a host's services from its control file, as
`corral cluster create/join` install them: a real etcd speaking TLS and the lab watchdog,
restarted when killed, stopped when no longer wanted, reported in the status file, and
powered off and on by the lab's faults. Loopback, and in a network namespace as root."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tls_certs import make_ca, make_host_cert

from corral.cluster.health import healthy
from corral.host import config as host_config
from corral.host.commands import AGENT, ETCD, WATCHDOG, ServiceCommand, host_commands
from corral.host.config import HostConfig
from corral.host.processes import pid_alive
from corral.host.services import SupervisedServices, read_status
from corral.lab import faults, netns, procs
from corral.lab.layout import LabLayout, spare_base_port
from corral.lab.supervisor import Supervisor, plan_children
from corral.pki.files import TLSFiles
from corral.setup.create import create_cluster

pytestmark = pytest.mark.integration


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


@dataclass
class Lab:
    layout: LabLayout
    config: HostConfig
    services: SupervisedServices
    proc: subprocess.Popen[bytes]

    @property
    def tls(self) -> TLSFiles:
        tls = self.config.tls
        assert tls is not None
        return TLSFiles(tls.ca_cert, tls.cert, tls.key)

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.layout.supervisor_json.read_text())
            return data
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def running(self) -> dict[str, int]:
        """What the status file says runs, checked against /proc."""
        found = read_status(self.config.run_dir).services
        return {name: s.pid for name, s in found.items() if pid_alive(s.pid)}

    def etcd_healthy(self) -> bool:
        return healthy(self.config.client_url, timeout=1.0, tls=self.tls)

    def wait_etcd_healthy(self, what: str, timeout: float) -> None:
        """As wait_for, but a failure shows the end of etcd's own log: why it is not."""
        try:
            wait_for(what, self.etcd_healthy, timeout)
        except TimeoutError:
            tail = self.layout.log_path("n1-etcd").read_text(errors="replace")[-3000:]
            raise TimeoutError(f"{what}; the end of n1-etcd.log:\n{tail}") from None

    def supervisor_log(self) -> str:
        return self.layout.log_path("supervisor").read_text()


def start_supervisor(layout: LabLayout) -> subprocess.Popen[bytes]:
    """As `lab up` starts it, but in this directory: an import path relative to it holds."""
    with open(layout.log_path("supervisor"), "ab") as logf:
        return subprocess.Popen(
            [sys.executable, "-m", "corral.lab.supervisor", str(layout.root)],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True)


def set_up_host(layout: LabLayout) -> HostConfig:
    """Host n1 of the lab as `cluster create` would set it up: TLS files and host.json."""
    m = layout.etcd_member(1)
    config = HostConfig.for_lab(
        layout.root, "n1", cluster="lab", address=layout.host_address(1),
        etcd_client_port=m.client_port, etcd_peer_port=m.peer_port,
        agent_port=layout.agent_port(1), api_port=layout.api_port,
        images_dir=layout.root / "images")
    assert config.tls is not None
    ca = make_ca(layout.root / "ca.crt", layout.root / "ca.key")
    config.tls.ca_cert.parent.mkdir(parents=True)
    shutil.copy(layout.root / "ca.crt", config.tls.ca_cert)
    make_host_cert(ca, "n1", config.tls.cert, config.tls.key,
                   ips=tuple({"127.0.0.1", config.address}))
    host_config.save(config)
    return config


@pytest.fixture
def make_lab(short_tmp: Path) -> Iterator[Callable[[bool], Lab]]:
    made: list[Lab] = []

    def make(in_netns: bool) -> Lab:
        base = spare_base_port()
        layout = LabLayout(short_tmp / "lab", nodes=1, base_port=base, api_port=base + 390,
                           netns=in_netns, cluster_mode=True)
        layout.save()
        layout.logs_dir.mkdir()
        config = set_up_host(layout)
        assert layout.host_config_path(1) == config.config_path
        services = SupervisedServices(config.name, config.run_dir)
        # Installed and started before the supervisor runs: it starts them as a booting host
        # starts its enabled units. The agent and the API stay unwanted.
        services.install(host_commands(config))
        services.start([ETCD, WATCHDOG])
        lab = Lab(layout, config, services, start_supervisor(layout))
        made.append(lab)
        wait_for("supervisor ready", lambda: lab.state().get("ready"), 30)
        return lab

    try:
        yield make
    except Exception:
        for lab in made:
            print(lab.supervisor_log())
        raise
    finally:
        for lab in made:
            if lab.proc.poll() is None:
                lab.proc.terminate()
                try:
                    lab.proc.wait(30)
                except subprocess.TimeoutExpired:
                    lab.proc.kill()
            procs.terminate(procs.lab_processes(lab.layout), 2)
            if lab.layout.netns:
                netns.down(lab.layout)


def restarted(lab: Lab, service: str, old: int) -> int | None:
    pid = lab.running().get(service)
    return pid if pid not in (None, old) else None


def as_running(argv: tuple[str, ...]) -> list[str]:
    """What /proc shows of an installed command line: etcd's launcher becomes etcd."""
    launcher = ("-m", "corral.host.etcd_launch")
    return list(argv[3:] if argv[1:3] == launcher else argv)


def test_a_host_runs_restarts_and_stops_what_its_control_file_wants(
        make_lab: Callable[[bool], Lab]) -> None:
    lab = make_lab(False)
    running = wait_for("etcd and watchdog up", lambda: (r := lab.running()) and len(r) == 2
                       and r, 20)
    assert set(running) == {ETCD, WATCHDOG}
    lab.wait_etcd_healthy("etcd healthy over TLS", 20)
    assert lab.services.is_active(ETCD) and not lab.services.is_active("corral-agent")
    # The very command line installed, under the names and roles of the lab's own plan.
    installed = {c.name: as_running(c.argv) for c in host_commands(lab.config)}
    assert procs.cmdline(running[ETCD]) == installed[ETCD]
    state = lab.state()
    assert state["children"] == {"n1-etcd": running[ETCD], "n1-watchdog": running[WATCHDOG]}
    assert state["roles"] == {"n1-etcd": "etcd", "n1-watchdog": "watchdog"}
    assert state["hosts"] == {"n1-etcd": "n1", "n1-watchdog": "n1"}

    # A killed service comes back, as systemd would restart it.
    os.kill(running[ETCD], signal.SIGKILL)
    etcd = wait_for("etcd restarted", lambda: restarted(lab, ETCD, running[ETCD]), 10)
    assert lab.state()["restarts"]["n1-etcd"] == 1
    lab.wait_etcd_healthy("etcd healthy again", 20)

    # The leader (the only member), found over gRPC with the host's TLS files.
    assert faults.kill_etcd_leader(lab.layout) == ("n1", etcd)
    etcd = wait_for("etcd restarted after kill-etcd-leader",
                    lambda: restarted(lab, ETCD, etcd), 10)

    # A control file that does not read changes nothing, and says why in the log.
    good = lab.layout.control_file(1).read_text()
    lab.layout.control_file(1).write_text("{broken")
    wait_for("the broken file logged", lambda: "keeps its services as they are"
             in lab.supervisor_log(), 5)
    assert str(lab.layout.control_file(1)) in lab.supervisor_log()
    assert lab.running() == {ETCD: etcd, WATCHDOG: running[WATCHDOG]}
    lab.layout.control_file(1).write_text(good)

    # No longer wanted: stopped, the rest untouched.
    lab.services.stop([ETCD])
    wait_for("etcd stopped", lambda: ETCD not in lab.running(), 15)
    assert not pid_alive(etcd)
    assert lab.running() == {WATCHDOG: running[WATCHDOG]}
    wait_for("etcd gone from the children", lambda: "n1-etcd" not in lab.state()["children"], 2)
    assert not lab.services.is_active(ETCD)

    # Wanted again: started again.
    lab.services.start([ETCD])
    wait_for("etcd started again", lambda: ETCD in lab.running(), 10)

    # The lab stops: every service ends and the status file says nothing runs.
    watchdog = running[WATCHDOG]
    lab.proc.send_signal(signal.SIGTERM)
    assert lab.proc.wait(30) == 0
    assert not pid_alive(watchdog)
    assert read_status(lab.config.run_dir).services == {}
    assert procs.lab_processes(lab.layout) == []


def power_cycle(lab: Lab) -> None:
    """kill-node holds every service of the host down, start-node brings them back."""
    before = wait_for("both services up", lambda: (r := lab.running()) and len(r) == 2 and r)
    killed = faults.kill_node(lab.layout, "n1")
    assert killed.processes == {"n1-etcd": before[ETCD], "n1-watchdog": before[WATCHDOG]}
    assert not any(pid_alive(p) for p in before.values())
    wait_for("status emptied", lambda: read_status(lab.config.run_dir).services == {}, 5)
    time.sleep(1.5)  # longer than the first restart's backoff: nothing comes back
    assert lab.running() == {}
    assert lab.state()["children"] == {"n1-etcd": None, "n1-watchdog": None}

    back = faults.start_node(lab.layout, "n1")
    assert set(back) == {"n1-etcd", "n1-watchdog"}
    wait_for("status lists them", lambda: len(lab.running()) == 2, 5)
    assert lab.running() == {ETCD: back["n1-etcd"], WATCHDOG: back["n1-watchdog"]}
    lab.wait_etcd_healthy("etcd healthy after the power-on", 20)


def test_kill_node_and_start_node_power_a_host_off_and_on(
        make_lab: Callable[[bool], Lab]) -> None:
    power_cycle(make_lab(False))


@pytest.mark.skipif(not netns.available(), reason="network namespaces need root")
def test_in_netns_mode_the_services_run_in_the_hosts_namespace(
        make_lab: Callable[[bool], Lab]) -> None:
    lab = make_lab(True)
    running = wait_for("etcd and watchdog up", lambda: (r := lab.running()) and len(r) == 2
                       and r, 20)
    ns = Path("/run/netns", lab.layout.netns_name(1))
    for pid in running.values():
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == ns.stat().st_ino
    assert lab.config.address.startswith("198.")
    lab.wait_etcd_healthy("etcd healthy over the lab bridge", 20)

    faults.partition(lab.layout, "n1")
    assert not lab.etcd_healthy()
    assert faults.heal(lab.layout) == ["n1"]
    wait_for("etcd reachable after the heal", lab.etcd_healthy, 10)

    power_cycle(lab)
    for pid in lab.running().values():
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == ns.stat().st_ino


def test_the_supervisor_follows_each_change_of_a_control_file(short_tmp: Path) -> None:
    """In-process, with stand-in services: a command that cannot start is tried again with the
    backoff, a changed command line restarts its service alone, a new control file version is
    read at the next tick."""
    layout = LabLayout(short_tmp / "lab", nodes=2, base_port=spare_base_port(),
                       cluster_mode=True)
    layout.save()
    sup = Supervisor(layout, plan_children(layout), seed=False)
    services = SupervisedServices("n2", layout.run_dir(2))
    services.install([ServiceCommand(ETCD, "etcd", (str(short_tmp / "no-such-etcd"),)),
                      ServiceCommand(AGENT, "agent", ("sleep", "100"))])
    services.start([ETCD, AGENT])
    try:
        sup.tick()
        etcd, agent = sup.children["n2-etcd"], sup.children["n2-agent"]
        assert etcd.pid is None and etcd.failures == 1 and etcd.next_start > 0
        assert "cannot start" in layout.log_path("n2-etcd").read_text()
        assert agent.pid is not None
        assert agent.spec.argv == ("sleep", "100") and agent.spec.host == "n2"
        assert read_status(layout.run_dir(2)).services.keys() == {AGENT}
        assert not layout.services_status_file(1).exists()  # n1 has nothing installed

        # The fixed command line starts at once; the agent, unchanged, keeps running.
        first_agent = agent.pid
        services.install([ServiceCommand(ETCD, "etcd", ("sleep", "101")),
                          ServiceCommand(AGENT, "agent", ("sleep", "100"))])
        sup.tick()
        etcd = sup.children["n2-etcd"]
        assert etcd.pid is not None and procs.cmdline(etcd.pid) == ["sleep", "101"]
        assert sup.children["n2-agent"].pid == first_agent
        assert {n: s.pid for n, s in read_status(layout.run_dir(2)).services.items()} == {
            ETCD: etcd.pid, AGENT: first_agent}

        # Nothing changed: nothing read, nothing restarted.
        sup.tick()
        assert sup.children["n2-etcd"].pid == etcd.pid

        services.stop([AGENT])
        sup.tick()
        assert "n2-agent" not in sup.children and not pid_alive(first_agent)
        assert read_status(layout.run_dir(2)).services.keys() == {ETCD}

        # Wanted while the host is powered off: it starts with the power.
        etcd_pid = etcd.pid
        layout.power_marker(2).write_text("0\n")
        sup.tick()
        assert not pid_alive(etcd_pid)
        services.start([AGENT])
        sup.tick()
        assert sup.children["n2-agent"].pid is None and sup.children["n2-agent"].held
        assert read_status(layout.run_dir(2)).services == {}
        layout.power_marker(2).unlink()
        sup.tick()
        assert sup.children["n2-agent"].pid is not None
        assert sup.children["n2-etcd"].pid is not None
        assert read_status(layout.run_dir(2)).services.keys() == {ETCD, AGENT}
    finally:
        sup.stop()
    assert read_status(layout.run_dir(2)).services == {}
    assert procs.lab_processes(layout) == []


def proc_state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2]


def test_cluster_create_builds_its_host_under_the_supervisor(short_tmp: Path) -> None:
    """One code path: `cluster create` installs and starts the host's services through its
    control file, the supervisor runs them (etcd with auth, the lab watchdog, the agent, the
    API over HTTPS), and the faults act on them."""
    base = spare_base_port()
    layout = LabLayout(short_tmp / "lab", nodes=1, base_port=base, api_port=base + 390,
                       cluster_mode=True)
    layout.save()
    layout.logs_dir.mkdir()
    images = short_tmp / "images"
    images.mkdir()
    m = layout.etcd_member(1)
    config = HostConfig.for_lab(
        layout.root, "n1", cluster="lab", address=layout.host_address(1),
        etcd_client_port=m.client_port, etcd_peer_port=m.peer_port,
        agent_port=layout.agent_port(1), api_port=layout.api_port, images_dir=images,
        accel="tcg")
    proc = start_supervisor(layout)
    lab = Lab(layout, config, SupervisedServices(config.name, config.run_dir), proc)
    try:
        wait_for("supervisor ready", lambda: lab.state().get("ready"), 30)
        created = asyncio.run(create_cluster(config, lab.services, print))
        assert created.api_token
        running = wait_for("all four services", lambda: (r := lab.running()) and len(r) == 4
                           and r, 20)
        assert lab.state()["roles"] == {"n1-etcd": "etcd", "n1-watchdog": "watchdog",
                                        "n1-agent": "agent", "n1-api": "api"}
        installed = {c.name: as_running(c.argv) for c in host_commands(config)}
        assert {n: procs.cmdline(p) for n, p in running.items()} == installed
        assert config.tls is not None
        ca = ssl.create_default_context(cafile=str(config.tls.ca_cert))
        wait_for("the API over HTTPS", lambda: api_health(config.api_url, ca), 20)

        agent = faults.freeze_agent(layout, "n1")
        assert agent == running[AGENT]
        wait_for("the agent stopped", lambda: proc_state(agent) == "T", 5)
        faults.thaw_agent(layout, "n1")
        wait_for("the agent running again", lambda: proc_state(agent) != "T", 5)

        # With etcd's authentication on, the leader is still found with the host's files.
        assert faults.kill_etcd_leader(layout) == ("n1", running[ETCD])
        wait_for("etcd restarted", lambda: restarted(lab, ETCD, running[ETCD]), 10)

        # A clean shutdown: the agent first, then the rest; all held down until power-on.
        wait_for("the agent up", lambda: AGENT in lab.running(), 10)
        done = faults.shutdown_node(layout, "n1", "poweroff", 30)
        assert done.node == "n1"
        wait_for("status emptied", lambda: read_status(config.run_dir).services == {}, 5)
        assert lab.running() == {}
        back = faults.start_node(layout, "n1")
        assert set(back) == {"n1-etcd", "n1-watchdog", "n1-agent", "n1-api"}
        wait_for("all four back", lambda: len(lab.running()) == 4, 5)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert read_status(config.run_dir).services == {}
        assert procs.lab_processes(layout) == []
    except Exception:
        print(lab.supervisor_log())
        for name in ("n1-etcd", "n1-agent", "n1-api"):
            path = layout.log_path(name)
            print(f"--- {name}\n{path.read_text()[-3000:] if path.exists() else ''}")
        raise
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        procs.terminate(procs.lab_processes(layout), 2)


def api_health(api_url: str, ca: ssl.SSLContext) -> bool:
    try:
        return httpx.get(f"{api_url}/api/v1/health", verify=ca, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False
