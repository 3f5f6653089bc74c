"""How long the `corral` command takes to start: wall time of whole processes, next to a bare
Python and a bare `import typer` measured in the same run, and the modules that cost most.

    .venv/bin/python bench/cli_start.py [--runs 10] [--port PORT]

`corral vm list` runs twice per round. Against 127.0.0.1 on a port nothing listens on
(refused): the connection is refused at once and the command fails, so its time is the start
plus one refused connect. Against a loopback listener that closes each connection it accepts
(until its request): the time from the process's spawn to its connection, i.e. the start
before the HTTP request (imports, parsing, config, HTTP client). The code measured is this
tree's src/ (it goes first on PYTHONPATH). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# What the `corral` console script does, with its name in the usage lines.
CORRAL = "import sys; from corral.cli.main import app; sys.exit(app(prog_name='corral'))"


def closed_port() -> int:
    """A loopback port nothing listens on (free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def environment(port: int, config_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CORRAL_CA", "PYTHONPROFILEIMPORTTIME")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    env["CORRAL_URL"] = f"http://127.0.0.1:{port}"
    env["CORRAL_TOKEN"] = "bench"
    env["CORRAL_CONFIG"] = str(config_dir / "absent.json")  # no saved config is read
    return env


def commands(python: str) -> dict[str, list[str]]:
    return {
        "python -c pass": [python, "-c", "pass"],
        "import typer": [python, "-c", "import typer"],
        "import corral.cli.main": [python, "-c", "import corral.cli.main"],
        "corral --help": [python, "-c", CORRAL, "--help"],
        "corral vm --help": [python, "-c", CORRAL, "vm", "--help"],
        "corral vm list (refused)": [python, "-c", CORRAL, "vm", "list"],
    }


def wall(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60, check=False)
    return time.perf_counter() - t0


def until_request(argv: list[str], env: dict[str, str], listener: Listener) -> float:
    """Seconds from the spawn of `vm list` to its connection to the listener."""
    seen = len(listener.arrivals)
    t0 = time.perf_counter()
    subprocess.run(argv, env=env | {"CORRAL_URL": f"http://127.0.0.1:{listener.port}"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)
    if len(listener.arrivals) == seen:
        raise SystemExit("`corral vm list` never connected to the listener")
    return listener.arrivals[seen] - t0


def top_imports(argv: list[str], env: dict[str, str], count: int) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) of the `count` slowest imports, from -X importtime."""
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    found = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|", 2)
        found.append((int(cumulative), int(own), name.rstrip()))
    return sorted(found, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--port", type=int, default=0,
                        help="closed loopback port for `vm list` (default: one found free)")
    parser.add_argument("--top", type=int, default=10, help="slowest imports to list")
    args = parser.parse_args()
    port = args.port or closed_port()
    runs = commands(sys.executable)
    listener = Listener()
    listing = runs["corral vm list (refused)"]
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(port, Path(tmp))
        for argv in runs.values():  # warm the page cache and the .pyc files
            wall(argv, env)
        times: dict[str, list[float]] = {label: [] for label in runs}
        times["corral vm list (until its request)"] = []
        for _ in range(args.runs):  # interleaved: a busy moment costs every command alike
            for label, argv in runs.items():
                times[label].append(wall(argv, env))
            times["corral vm list (until its request)"].append(
                until_request(listing, env, listener))
        listener.close()
        base = statistics.median(times["python -c pass"])
        print(f"{args.runs} runs each, {sys.executable}, `vm list` against 127.0.0.1:{port}")
        print(f"{'':36} {'median':>8} {'max':>8} {'median - python':>16}")
        for label, seen in times.items():
            mid = statistics.median(seen)
            print(f"{label:36} {mid * 1000:6.0f}ms {max(seen) * 1000:6.0f}ms "
                  f"{(mid - base) * 1000:14.0f}ms")
        print("\nslowest imports of `corral vm list` (-X importtime, one run):")
        print(f"{'cumulative':>10} {'self':>8}  module")
        for cumulative, own, name in top_imports(listing, env, args.top):
            print(f"{cumulative / 1000:8.1f}ms {own / 1000:6.1f}ms  {name}")


if __name__ == "__main__":
    main()
