"""The `corral` command: one sub-command per noun.

Each noun's commands are in a module of their own, imported when that noun is used (run,
completed, or listed by `corral --help`): `corral vm list` loads neither the lab's nor the
cluster setup's code, and starts in a fraction of the time.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from corral.cli.watchdog import watchdog_mux

# name: (module, its Typer), in the order `corral --help` lists them.
NOUNS: dict[str, tuple[str, str]] = {
    "cluster": ("corral.cli.cluster", "app"),
    "witness": ("corral.cli.cluster", "witness_app"),
    "vm": ("corral.cli.vm", "app"),
    "node": ("corral.cli.node", "app"),
    "task": ("corral.cli.task", "app"),
    "api": ("corral.cli.api", "app"),
    "lab": ("corral.cli.lab", "app"),
    "image": ("corral.cli.image", "app"),
    "agent": ("corral.cli.agent", "app"),
    "ha": ("corral.cli.ha", "app"),
    "balance": ("corral.cli.balance", "app"),
    "sim": ("corral.cli.sim", "app"),
}


def load_noun(name: str) -> Any:
    """The click group of a noun's Typer, as `add_typer` would have made it."""
    module, attribute = NOUNS[name]
    group = typer.main.get_group(getattr(importlib.import_module(module), attribute))
    group.name = name
    return group


class NounCommands(MutableMapping[str, Any]):
    """A group's commands, with every noun's name listed and its commands built on first
    lookup. Names alone (help's list, a typo's suggestions) import nothing."""

    def __init__(self, built: MutableMapping[str, Any]) -> None:
        self.built = dict(built)

    def __getitem__(self, name: str) -> Any:
        if name not in self.built and name in NOUNS:
            self.built[name] = load_noun(name)
        return self.built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        del self.built[name]

    def __iter__(self) -> Iterator[str]:
        yield from (name for name in self.built if name not in NOUNS)
        yield from NOUNS

    def __len__(self) -> int:
        return len(set(self.built) | set(NOUNS))


class NounGroup(TyperGroup):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = NounCommands(self.commands)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names: the commands are built when looked up


app = typer.Typer(
    name="corral",
    help="Corral: a cluster manager for QEMU/KVM virtual machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=NounGroup,
)
app.command("watchdog-mux")(watchdog_mux)


@app.callback()
def _nouns() -> None:
    # A Typer with a single command would be that command; the nouns make it a group.
    pass


if __name__ == "__main__":
    app()
