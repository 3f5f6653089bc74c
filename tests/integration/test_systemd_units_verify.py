"""The units a host and a witness get, checked by systemd itself: `systemd-analyze verify`
accepts them, and systemd's own parser reads back every ExecStart= argument as written.

Needs systemd's binaries, not systemd as PID 1 (the Makefile installs the `systemd` package).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.host.commands import AGENT, ServiceCommand, api_command, etcd_command
from corral.host.config import ETCD_BINARY, HostConfig, Role, installed_corral
from corral.host.services import write_units
from corral.host.units import host_units, unit_text

pytestmark = pytest.mark.integration

SYSTEMD = Path("/lib/systemd/systemd")
NOBODY = "65534"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `make system-deps` installs systemd")
    return found


def config(role: Role, address: str = "10.0.0.1", **fields: object) -> HostConfig:
    corral = installed_corral()
    assert Path(corral[0]).is_file(), corral
    return HostConfig.for_real_host(
        cluster="prod", name="h1" if role == "host" else "w1", address=address, role=role,
        corral=corral, etcd_binary=ETCD_BINARY, **fields)


@pytest.fixture
def unit_dir() -> Iterator[Path]:
    # Readable by nobody, for systemd's test mode (it refuses to run as root).
    path = Path(tempfile.mkdtemp(prefix="corral-units-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def verify(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("systemd-analyze"), "verify", *map(str, paths)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})


@pytest.mark.parametrize("role", ["host", "witness"])
def test_systemd_analyze_verifies_the_units(role: Role, unit_dir: Path) -> None:
    assert Path(ETCD_BINARY).is_file(), "etcd is not installed"
    paths = write_units(config(role), unit_dir, machine="x86_64")
    assert [p.name for p in paths] == (
        ["corral-etcd.service", "corral-watchdog.service", "corral-agent.service",
         "corral-api.service"] if role == "host" else ["corral-etcd.service"])
    result = verify(paths)
    # Warnings (an unknown setting, a bad escape) leave the exit code at 0: none is allowed.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_fails_on_a_broken_unit(unit_dir: Path) -> None:
    """The check above would see a unit systemd cannot run."""
    command = ServiceCommand(AGENT, "agent", ("/nonexistent/corral", "agent", "run"))
    path = unit_dir / "corral-agent.service"
    path.write_text(unit_text(command, [AGENT]))
    result = verify([path])
    assert result.returncode != 0
    assert "/nonexistent/corral" in result.stderr


def parsed_command_lines(unit_dir: Path, unit: str) -> list[list[str]]:
    """The ExecStart= argv of unit as systemd's own parser reads it: its test mode dumps
    the loaded units ("Command Line: ..." quoted with C escapes) without running anything."""
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         str(SYSTEMD), "--test", "--system", f"--unit={unit}", "--log-target=console",
         "--no-pager"],
        capture_output=True, text=True, timeout=60, check=False,
        # The trailing ':' keeps the system's own units (sysinit.target and the like).
        env={"SYSTEMD_UNIT_PATH": f"{unit_dir}:", "PATH": os.environ.get("PATH", "")})
    assert result.returncode == 0, result.stderr
    dump = result.stdout + result.stderr
    # Warnings about a unit start with its path ("<path>:<line>: Ignoring ...").
    warnings = [line for line in dump.splitlines() if line.startswith(f"{unit_dir}/")]
    assert not warnings
    block = dump.split(f"-> Unit {unit}:", 1)[1].split("-> Unit ", 1)[0]
    return [dumped_words(line) for line in re.findall(r"Command Line: (.*)", block)]


C_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def dumped_words(line: str) -> list[str]:
    """Words as systemd's dump prints them: plain, or in double quotes with C escapes (and
    \\$, \\` escaped as for a shell)."""
    def unescape(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc[0] == "x":
            return chr(int(esc[1:], 16))
        return C_ESCAPES.get(esc, esc)

    words = []
    for quoted, plain in re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', line):
        words.append(re.sub(r"\\(x[0-9a-fA-F]{2}|.)", unescape, quoted) if quoted or not plain
                     else plain)
    return words


def test_systemd_reads_back_every_argument(unit_dir: Path) -> None:
    if not SYSTEMD.is_file():
        pytest.fail(f"{SYSTEMD} is missing: `make system-deps` installs systemd")
    odd = ("/opt/my corral/bin/corral", "two words", "", "100%", "%n", "$HOME", "${X}", ";",
           'a "q"', "b\\s", "it's", "tab\there", "line\nnext", "ü", "--x=1,2", "bell\x07",
           "`b`")
    host = config("host", address="fd00::1", data_dir=Path("/srv/corral data"))
    units = host_units(host)
    units["corral-agent.service"] = unit_text(ServiceCommand(AGENT, "odd 100%", odd), [AGENT])
    for name, text in units.items():
        (unit_dir / name).write_text(text)
        (unit_dir / name).chmod(0o644)
    # systemd keeps $$ in the parsed argv and makes it $ only when it runs the command.
    got = parsed_command_lines(unit_dir, "corral-agent.service")
    assert [[a.replace("$$", "$") for a in line] for line in got] == [list(odd)]
    assert parsed_command_lines(unit_dir, "corral-etcd.service") == [
        list(etcd_command(host).argv)]
    assert parsed_command_lines(unit_dir, "corral-api.service") == [
        list(api_command(host).argv)]
