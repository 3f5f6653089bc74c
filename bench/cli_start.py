"""How long the `corral` command takes to start: wall and CPU time of whole processes, next to
a bare Python and a bare `import typer` measured in the same run, and the slowest imports.

    .venv/bin/python bench/cli_start.py [--runs 10] [--port PORT] [--top 10]

`corral vm list` is configured as a cluster's CLI is (https, the cluster CA pinned) and runs
  - refused: against 127.0.0.1 on a port nothing listens on; the connection is refused at
    once and the command fails, so its time is the start plus one refused connect;
  - until its request: against a loopback listener that notes when the connection arrives
    and closes it; the figure is the time from the spawn to that connection, i.e. the start
    before the HTTP request (imports, parsing, config, HTTP client). Once more with a plain
    http URL, where httpx loads the system's CA bundle instead of the one pinned CA.
The code measured is this tree's src/ (it goes first on PYTHONPATH). The runs are
interleaved, so a busy moment of the machine costs every command alike; CPU time (user +
system of the process) is steadier than wall time on a busy machine. Prints figures, asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from corral.pki.ca import make_ca
from corral.pki.pem import write_cert

SRC = Path(__file__).resolve().parents[1] / "src"
# What the `corral` console script does, with its name in the usage lines.
CORRAL = "import sys; from corral.cli.main import app; sys.exit(app(prog_name='corral'))"


class Listener:
    """A loopback port that notes when each connection arrives and closes it unanswered."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.arrivals: list[float] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed: the bench is over
                return
            self.arrivals.append(time.perf_counter())
            conn.close()

    def close(self) -> None:
        self.sock.close()


@dataclass
class Case:
    label: str
    argv: list[str]
    url: str | None = None  # the API's URL for `vm list`
    listener: Listener | None = None  # time until the connection arrives there
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def run(self, env: dict[str, str]) -> None:
        if self.url:
            env = env | {"CORRAL_URL": self.url}
            if self.url.startswith("http://"):
                env.pop("CORRAL_CA")
        seen = len(self.listener.arrivals) if self.listener else 0
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(self.argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60, check=False)
        end = time.perf_counter()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if self.listener:
            if len(self.listener.arrivals) == seen:
                raise SystemExit(f"{self.label}: the command never connected")
            end = self.listener.arrivals[seen]
        self.wall.append(end - t0)
        self.cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def closed_port() -> int:
    """A loopback port nothing listens on (free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(workdir: Path) -> dict[str, str]:
    """This tree's code, a token and a pinned CA, and no saved client config."""
    ca_file = workdir / "ca.crt"
    write_cert(ca_file, make_ca("bench").cert)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    env["CORRAL_TOKEN"] = "bench"
    env["CORRAL_CA"] = str(ca_file)
    env["CORRAL_CONFIG"] = str(workdir / "absent.json")
    return env


def cases(python: str, port: int, listener: Listener) -> list[Case]:
    corral = [python, "-c", CORRAL]
    listing = [*corral, "vm", "list"]
    return [
        Case("python -c pass", [python, "-c", "pass"]),
        Case("import typer", [python, "-c", "import typer"]),
        Case("import corral.cli.main", [python, "-c", "import corral.cli.main"]),
        Case("corral --help", [*corral, "--help"]),
        Case("corral vm --help", [*corral, "vm", "--help"]),
        Case("corral vm list (refused)", listing, url=f"https://127.0.0.1:{port}"),
        Case("corral vm list (until its request)", listing,
             url=f"https://127.0.0.1:{listener.port}", listener=listener),
        Case("  the same, plain http", listing, url=f"http://127.0.0.1:{listener.port}",
             listener=listener),
    ]


def top_imports(case: Case, env: dict[str, str], count: int) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) of the `count` slowest imports, from -X importtime."""
    done = subprocess.run([case.argv[0], "-X", "importtime", *case.argv[1:]],
                          env=env | {"CORRAL_URL": case.url or ""}, capture_output=True,
                          text=True, timeout=60, check=False)
    found = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|", 2)
        found.append((int(cumulative), int(own), name.rstrip()))
    return sorted(found, reverse=True)[:count]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:6.0f}ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--port", type=int, default=0,
                        help="closed loopback port for `vm list` (default: one found free)")
    parser.add_argument("--top", type=int, default=10, help="slowest imports to list")
    args = parser.parse_args()
    port = args.port or closed_port()
    listener = Listener()
    runs = cases(sys.executable, port, listener)
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(Path(tmp))
        for case in runs:  # warm the page cache and the .pyc files; not counted
            case.run(env)
            case.wall.clear()
            case.cpu.clear()
        for _ in range(args.runs):
            for case in runs:
                case.run(env)
        listener.close()
        base = statistics.median(runs[0].wall)
        print(f"{args.runs} runs each, {sys.executable}")
        print(f"{'':36} {'wall: median':>12} {'max':>8} {'- python':>9}   {'CPU: median':>11}")
        for case in runs:
            mid = statistics.median(case.wall)
            print(f"{case.label:36} {ms(mid):>12} {ms(max(case.wall))} {ms(mid - base):>9}   "
                  f"{ms(statistics.median(case.cpu)):>11}")
        print(f"\nslowest imports of `corral vm list` (-X importtime, one run):\n"
              f"{'cumulative':>10} {'self':>8}  module")
        for cumulative, own, name in top_imports(runs[5], env, args.top):
            print(f"{cumulative / 1000:8.1f}ms {own / 1000:6.1f}ms  {name}")


if __name__ == "__main__":
    main()
