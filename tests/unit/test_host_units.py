"""The systemd units of a host (pure): quoting, ordering, the settings each service needs."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import pytest

from corral.host.commands import AGENT, ETCD, ServiceCommand
from corral.host.config import HostConfig, WatchdogSettings
from corral.host.units import environment_line, exec_line, host_units, quote_word, unit_text


def real(**fields: Any) -> HostConfig:
    return HostConfig.for_real_host(**{"cluster": "prod", "name": "h1", "address": "10.0.0.1",
                                       "corral": ["/usr/local/bin/corral"], **fields})


def sections(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes="#")
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


@pytest.mark.parametrize(("word", "quoted"), [
    ("/usr/bin/etcd", "/usr/bin/etcd"),
    ("--initial-cluster", "--initial-cluster"),
    ("h1=https://10.0.0.1:2380,h2=https://10.0.0.2:2380",
     "h1=https://10.0.0.1:2380,h2=https://10.0.0.2:2380"),
    ("a b", '"a b"'),
    ("", '""'),
    ("100%", "100%%"),
    ("%n", "%%n"),
    ("$HOME", "$$HOME"),
    ("${X} y", '"$${X} y"'),
    (";", '";"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("it's", '"it\'s"'),
    ("line\nbreak\ttab", '"line\\nbreak\\ttab"'),
    ("bell\x07", '"bell\\x07"'),
    ("/srv/vm images/ü", '"/srv/vm images/ü"'),
])
def test_words_are_quoted_for_systemd(word: str, quoted: str) -> None:
    assert quote_word(word) == quoted


def test_environment_values_keep_dollars_but_not_specifiers() -> None:
    assert environment_line({"B": "x y", "A": "$1 %i"}) == '"A=$1 %%i" "B=x y"'
    with pytest.raises(ValueError, match="environment variable name"):
        environment_line({"A B": "1"})


@pytest.mark.parametrize("program", ["corral", "-/bin/x", "", "@/bin/x"])
def test_the_program_must_be_an_absolute_path(program: str) -> None:
    with pytest.raises(ValueError, match="absolute path"):
        exec_line([program, "x"] if program else [])


def test_a_host_has_four_units_and_a_witness_one() -> None:
    assert list(host_units(real())) == ["corral-etcd.service", "corral-watchdog.service",
                                        "corral-agent.service", "corral-api.service"]
    assert list(host_units(real(role="witness"))) == ["corral-etcd.service"]


def test_each_unit_runs_its_command_line_and_starts_at_boot() -> None:
    units = host_units(real(), machine="aarch64")
    etcd = sections(units["corral-etcd.service"])
    assert " -m corral.host.etcd_launch /usr/bin/etcd --name h1 --data-dir " in (
        etcd["Service"]["ExecStart"])
    assert etcd["Service"]["Environment"] == "ETCD_UNSUPPORTED_ARCH=arm64"
    for text in units.values():
        unit = sections(text)
        assert unit["Install"]["WantedBy"] == "multi-user.target"
        assert unit["Service"]["Restart"] == "always"
        assert unit["Unit"]["StartLimitIntervalSec"] == "0"
        assert "Description" in unit["Unit"]
        assert text.startswith("# Written by Corral")


def test_the_agent_comes_after_etcd_and_the_watchdog_and_spares_its_qemus() -> None:
    agent = sections(host_units(real())["corral-agent.service"])
    assert agent["Unit"]["After"] == (
        "corral-etcd.service corral-watchdog.service network-online.target")
    assert agent["Unit"]["Wants"] == agent["Unit"]["After"]
    assert "Requires" not in agent["Unit"]
    assert agent["Service"]["KillMode"] == "process"
    assert agent["Service"]["TasksMax"] == "infinity"
    # Evacuation (300s) and the guests' power-off (60s) fit in the stop timeout.
    assert agent["Service"]["TimeoutStopSec"] == "420s"
    assert agent["Service"]["ExecStart"].startswith("/usr/local/bin/corral agent run ")
    others = host_units(real())
    for name in ("corral-etcd.service", "corral-watchdog.service", "corral-api.service"):
        assert "KillMode" not in sections(others[name])["Service"], name


def test_a_host_without_watchdog_does_not_wait_for_one() -> None:
    units = host_units(real(watchdog=WatchdogSettings(kind="none")))
    assert "corral-watchdog.service" not in units
    assert "watchdog" not in sections(units["corral-agent.service"])["Unit"]["After"]


def test_the_watchdog_is_never_killed_by_a_stop_timeout() -> None:
    mux = sections(host_units(real())["corral-watchdog.service"])["Service"]
    assert mux["TimeoutStopSec"] == "infinity"
    assert mux["OOMScoreAdjust"] == "-1000"
    assert mux["Nice"] == "-20"
    assert mux["RestartSec"] == "100ms"
    assert sections(host_units(real())["corral-watchdog.service"])["Unit"]["After"] == (
        "systemd-modules-load.service")


def test_the_api_and_etcd_units() -> None:
    units = host_units(real())
    api = sections(units["corral-api.service"])
    assert api["Unit"]["After"] == "corral-etcd.service network-online.target"
    assert "--pki-dir /etc/corral/pki" in api["Service"]["ExecStart"]
    etcd = sections(units["corral-etcd.service"])
    assert etcd["Service"]["Type"] == "exec"  # never blocks the boot on a quorum
    assert etcd["Service"]["LimitNOFILE"] == "65536"


def test_odd_arguments_are_quoted_in_exec_start() -> None:
    command = ServiceCommand(AGENT, "100% agent", ("/opt/my corral/bin/corral", "agent", "$x"))
    text = unit_text(command, [ETCD, AGENT])
    unit = sections(text)
    assert unit["Service"]["ExecStart"] == '"/opt/my corral/bin/corral" agent $$x'
    assert unit["Unit"]["Description"] == "100%% agent"
    assert unit["Unit"]["After"] == "corral-etcd.service network-online.target"


def test_units_name_real_paths() -> None:
    units = host_units(real(data_dir=Path("/srv/corral")))
    assert "--data-dir /srv/corral/etcd" in units["corral-etcd.service"]
