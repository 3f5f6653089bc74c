"""Installing and starting a host's services: systemctl's calls, the lab supervisor's control
file, the choice between them, softdog."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from corral.host.commands import AGENT, API, ETCD, WATCHDOG, host_commands
from corral.host.config import HostConfig, WatchdogSettings
from corral.host.services import (
    ServiceControl,
    ServicesError,
    SupervisedServices,
    SystemdServices,
    WantedService,
    choose,
    control_path,
    install_and_start,
    load_softdog,
    read_control,
    read_status,
    softdog_needed,
    systemd_booted,
    write_status,
    write_units,
)


def real(**fields: Any) -> HostConfig:
    return HostConfig.for_real_host(**{"cluster": "prod", "name": "h1", "address": "10.0.0.1",
                                       "corral": ["/usr/local/bin/corral"], **fields})


def lab(tmp: Path, **fields: Any) -> HostConfig:
    return HostConfig.for_lab(tmp, "n1", cluster="lab", address="127.0.0.1",
                              etcd_client_port=23801, etcd_peer_port=23901, agent_port=24001,
                              api_port=24101, images_dir=Path("/img"), python="/py", **fields)


class FakeRun:
    """subprocess.run as systemctl or modprobe would answer."""

    def __init__(self, code: int = 0, stderr: str = "", effect: Any = None) -> None:
        self.calls: list[list[str]] = []
        self.code = code
        self.stderr = stderr
        self.effect = effect

    def __call__(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        if self.effect is not None:
            self.effect()
        return subprocess.CompletedProcess(argv, self.code, "", self.stderr)


def test_write_units_puts_each_unit_in_the_root(tmp_path: Path) -> None:
    paths = write_units(real(), tmp_path, machine="x86_64")
    assert [p.name for p in paths] == ["corral-etcd.service", "corral-watchdog.service",
                                       "corral-agent.service", "corral-api.service"]
    assert all(p.parent == tmp_path and p.stat().st_mode & 0o777 == 0o644 for p in paths)
    assert " -m corral.host.etcd_launch /usr/bin/etcd " in paths[0].read_text()


def test_systemd_services_reload_enable_and_stop(tmp_path: Path) -> None:
    run = FakeRun()
    services = SystemdServices(tmp_path, run)
    install_and_start(real(), services)
    assert (tmp_path / "corral-agent.service").is_file()
    assert run.calls == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "corral-etcd.service", "corral-watchdog.service",
         "corral-agent.service", "corral-api.service"],
    ]
    services.stop([API])
    assert run.calls[-1] == ["systemctl", "disable", "--now", "corral-api.service"]
    assert services.is_active(ETCD)
    assert run.calls[-1] == ["systemctl", "is-active", "--quiet", "corral-etcd.service"]
    assert not SystemdServices(tmp_path, FakeRun(code=3)).is_active(ETCD)


def test_a_failing_systemctl_is_an_error_naming_the_call(tmp_path: Path) -> None:
    services = SystemdServices(tmp_path, FakeRun(code=1, stderr="Unit not found."))
    with pytest.raises(ServicesError, match=r"systemctl enable --now corral-etcd.service "
                                            r"failed \(exit 1\): Unit not found."):
        services.start([ETCD])


def test_a_lab_host_tells_the_supervisor_what_to_run(tmp_path: Path) -> None:
    config = lab(tmp_path)
    services = SupervisedServices(config.name, config.run_dir)
    assert read_control(config.run_dir) is None
    commands = host_commands(config)
    services.install(commands)
    control = read_control(config.run_dir)
    assert control is not None and control.host == "n1"
    assert [(s.name, s.wanted) for s in control.services] == [
        (ETCD, False), (WATCHDOG, False), (AGENT, False), (API, False)]
    assert control.services[2].argv == list(commands[2].argv)
    services.start([ETCD, AGENT])
    control = read_control(config.run_dir)
    assert control is not None
    assert [s.name for s in control.wanted()] == [ETCD, AGENT]
    # A new command line keeps what was wanted.
    services.install(host_commands(lab(tmp_path, lease_ttl=12)))
    control = read_control(config.run_dir)
    assert control is not None and [s.name for s in control.wanted()] == [ETCD, AGENT]
    assert "12" in control.services[2].argv
    services.stop([AGENT])
    control = read_control(config.run_dir)
    assert control is not None and [s.name for s in control.wanted()] == [ETCD]
    assert oct(control_path(config.run_dir).stat().st_mode & 0o777) == "0o644"


def test_starting_what_was_not_installed_is_refused(tmp_path: Path) -> None:
    config = lab(tmp_path, watchdog_timeout=0)
    services = SupervisedServices(config.name, config.run_dir)
    services.install(host_commands(config))
    with pytest.raises(ServicesError, match="not installed: corral-watchdog"):
        services.start([ETCD, WATCHDOG])


def test_the_control_file_format(tmp_path: Path) -> None:
    """What the supervisor reads: versioned JSON, services in start order, unknown fields of a
    newer Corral ignored, a broken file named with its field."""
    path = control_path(tmp_path)
    path.write_text('{"version": 1, "host": "n1", "future": 1, "services": ['
                    '{"name": "corral-etcd", "argv": ["/usr/bin/etcd"], "wanted": true}]}')
    assert read_control(tmp_path) == ServiceControl(host="n1", services=[
        WantedService(name="corral-etcd", argv=["/usr/bin/etcd"], env={}, wanted=True)])
    path.write_text('{"version": 1, "host": "n1", "services": [{"name": "corral-x", '
                    '"argv": ["/x"]}]}')
    with pytest.raises(ServicesError, match=rf"{path}: services.0.name: Input should be"):
        read_control(tmp_path)
    path.write_text('{"version": 2, "host": "n1"}')
    with pytest.raises(ServicesError, match="version"):
        read_control(tmp_path)


def test_the_status_the_supervisor_reports(tmp_path: Path) -> None:
    services = SupervisedServices("n1", tmp_path)
    assert not services.is_active(ETCD)
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_status(tmp_path, {ETCD: os.getpid(), AGENT: dead.pid})
    assert read_status(tmp_path).services[ETCD].pid == os.getpid()
    assert services.is_active(ETCD)
    assert not services.is_active(AGENT)
    assert not services.is_active(API)


def test_who_runs_the_services() -> None:
    assert choose("supervisor", booted=True) == "supervisor"
    assert choose("supervisor", booted=False) == "supervisor"
    assert choose("systemd", booted=True) == "systemd"
    with pytest.raises(ServicesError, match="systemd is not running as PID 1"):
        choose("systemd", booted=False)


def test_systemd_is_detected_as_sd_booted_does(tmp_path: Path) -> None:
    assert not systemd_booted(tmp_path / "run/systemd/system")
    (tmp_path / "run/systemd/system").mkdir(parents=True)
    assert systemd_booted(tmp_path / "run/systemd/system")


def test_softdog_only_for_a_real_host_without_a_watchdog_device(tmp_path: Path) -> None:
    assert softdog_needed(real(), device_exists=False)
    assert not softdog_needed(real(), device_exists=True)
    assert not softdog_needed(real(role="witness"), device_exists=False)
    assert not softdog_needed(real(watchdog=WatchdogSettings(kind="none")), device_exists=False)
    assert not softdog_needed(lab(tmp_path), device_exists=False)
    assert not softdog_needed(lab(tmp_path).model_copy(update={"managed_by": "supervisor",
                                                                "watchdog": WatchdogSettings()}),
                              device_exists=False)


def test_load_softdog_loads_it_now_and_at_every_boot(tmp_path: Path) -> None:
    device = tmp_path / "watchdog"
    config = real(watchdog=WatchdogSettings(device=device))
    run = FakeRun(effect=device.touch)  # udev makes the node once the module is in
    assert load_softdog(config, run, tmp_path / "modules-load.d")
    assert run.calls == [["modprobe", "softdog"]]
    assert (tmp_path / "modules-load.d/corral-softdog.conf").read_text().endswith("softdog\n")
    run = FakeRun()
    assert not load_softdog(config, run, tmp_path / "modules-load.d")  # the device is there
    assert run.calls == []


def test_a_failing_modprobe_says_why(tmp_path: Path) -> None:
    config = real(watchdog=WatchdogSettings(device=tmp_path / "watchdog"))
    with pytest.raises(ServicesError, match="modprobe softdog` failed .*not found"):
        load_softdog(config, FakeRun(code=1, stderr="Module softdog not found"), tmp_path)
    assert not (tmp_path / "corral-softdog.conf").exists()
