"""The CLI starts without the code it does not run: no etcd or gRPC client, no API server, no
crypto, no lab, setup or manager code, not even httpx, until a command needs them. Checked in
a fresh interpreter, where nothing imported by other tests can hide an import."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

from typer.testing import CliRunner

from corral.cli.main import NOUNS, app

# Third-party packages a command imports when it runs, never at the CLI's start.
HEAVY = ("aetcd", "grpc", "google.protobuf", "fastapi", "starlette", "uvicorn", "cryptography",
         "pydantic", "psutil", "qemu", "httpx", "httpcore", "asyncio")
# Corral's own modules the CLI may import at start: the commands, the lab's defaults and the
# API's limits that its help shows.
LIGHT_CORRAL = ("corral", "corral.cli", "corral.lab", "corral.lab.defaults", "corral.api",
                "corral.api.wire")

# Imports the CLI, optionally builds every command as `corral --help` and completion do, and
# prints the modules then loaded.
PROBE = """
import json, sys
from corral.cli.main import app
if sys.argv[1] == "tree":
    import typer.main
    def build(command, ctx):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if hasattr(sub, "list_commands"):
                build(sub, sub.context_class(sub, info_name=name, parent=ctx))
    root = typer.main.get_command(app)
    build(root, root.context_class(root, info_name="corral"))
print(json.dumps(sorted(sys.modules)))
"""


def modules_loaded(what: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, what], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def too_heavy(modules: list[str]) -> list[str]:
    third_party = [m for m in modules
                   if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    corral = [m for m in modules if (m == "corral" or m.startswith("corral."))
              and not m.startswith("corral.cli.") and m not in LIGHT_CORRAL]
    return sorted(third_party + corral)


def test_importing_the_cli_loads_no_heavy_module() -> None:
    loaded = modules_loaded("import")
    assert "corral.cli.main" in loaded  # the probe did import it
    assert too_heavy(loaded) == []


def test_building_every_command_loads_no_heavy_module() -> None:
    loaded = modules_loaded("tree")
    assert {f"corral.cli.{m}" for m in ("vm", "lab", "cluster", "agent", "sim")} <= set(loaded)
    assert too_heavy(loaded) == []


def test_help_lists_every_noun_in_order_with_its_own_help() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"], prog_name="corral", env={"COLUMNS": "200"})
    assert listing.exit_code == 0, listing.output
    panel = listing.output.split("Commands")[1].splitlines()[1:]
    rows = [line.strip("│ ").split(maxsplit=1) for line in panel if line.startswith("│")]
    assert [row[0] for row in rows] == ["watchdog-mux", *NOUNS]
    for (name, shown), (module, attribute) in zip(rows[1:], NOUNS.values(), strict=True):
        noun = getattr(importlib.import_module(module), attribute)
        assert shown.strip() == noun.info.help, name
        usage = runner.invoke(app, [name, "--help"], prog_name="corral")
        assert usage.exit_code == 0, usage.output
        assert f"corral {name} [OPTIONS] COMMAND [ARGS]..." in usage.output
