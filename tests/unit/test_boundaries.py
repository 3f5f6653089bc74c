"""The decision core imports no adapter: HA, scheduling, the manager's decisions, the agent's
decisions and the simulator must stay pure functions over plain data, so the same code runs
in production, in tests and on the simulator's virtual clock.

Imports are followed transitively through corral's own modules, so an adapter pulled in
through a helper module fails here as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import corral

ROOT = Path(corral.__file__).parent

# The pure core. Anything these reach, directly or through other corral modules, is checked.
CORE = [
    "corral.cluster.models",
    "corral.cluster.records",
    "corral.cluster.snapshot",
    "corral.cluster.actions",
    "corral.scheduler",
    "corral.ha.machine",
    "corral.ha.models",
    "corral.ha.nodes",
    "corral.ha.placement",
    "corral.ha.status",
    "corral.ha.actions",
    "corral.manager.decide",
    "corral.manager.maintenance",
    "corral.manager.bulk",
    "corral.manager.housekeeping",
    "corral.agent.reconciler",
    "corral.cluster.membership",
    "corral.pki.tokens",
    "corral.serial.core",
    "corral.setup.join_rules",
    "corral.setup.removal_rules",
    "corral.setup.leave_rules",
    "corral.setup.status_view",
    "corral.metrics.cluster",
    "corral.usage.rrd",
    "corral.usage.figures",
    "corral.sim",
]

# Adapters: etcd, QEMU and QMP, processes, sockets, HTTP, and corral's own shells over them.
FORBIDDEN = (
    "aetcd", "grpc", "qemu", "asyncio", "subprocess", "socket", "httpx", "uvicorn", "fastapi",
    "psutil", "corral.cluster.store", "corral.qemu", "corral.storage", "corral.migration",
    "corral.api", "corral.cli", "corral.lab", "corral.fencing", "corral.agent.main",
    "corral.agent.context", "corral.agent.actions", "corral.agent.tasks",
    "corral.agent.monitor", "corral.agent.liveness", "corral.manager.loop",
    "corral.manager.election", "corral.ha.store",
)


def module_file(name: str) -> Path | None:
    rel = Path(*name.split(".")[1:])
    for candidate in (ROOT / rel / "__init__.py", (ROOT / rel).with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imports_of(name: str) -> set[str]:
    path = module_file(name)
    assert path is not None, name
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative imports are not used in corral; resolve them anyway
                base = name.split(".")[: -node.level]
                found.add(".".join([*base, node.module]))
            else:
                found.add(node.module)
            for alias in node.names:  # `from corral.agent import actions` names a module
                sub = f"{node.module}.{alias.name}"
                if module_file(sub) is not None and sub.startswith("corral."):
                    found.add(sub)
    return found


def package_modules(name: str) -> list[str]:
    path = module_file(name)
    assert path is not None, name
    if path.name != "__init__.py":
        return [name]
    return [name] + [f"{name}.{p.stem}" for p in sorted(path.parent.glob("*.py"))
                     if p.stem != "__init__"]


def reach(start: str) -> dict[str, str]:
    """Every module start imports, transitively within corral: module -> who imported it."""
    seen: dict[str, str] = {}
    todo = [(m, start) for m in package_modules(start)]
    while todo:
        mod, via = todo.pop()
        if mod in seen:
            continue
        seen[mod] = via
        if mod.startswith("corral.") and module_file(mod) is not None:
            todo.extend((m, mod) for m in imports_of(mod))
    return seen


def forbidden(mod: str) -> bool:
    return any(mod == f or mod.startswith(f + ".") for f in FORBIDDEN)


@pytest.mark.parametrize("core", CORE)
def test_core_imports_no_adapter(core: str) -> None:
    reached = reach(core)
    bad = sorted(f"{m} (imported by {via})" for m, via in reached.items() if forbidden(m))
    assert not bad, f"{core} reaches adapters: {bad}"


def test_the_check_sees_an_adapter() -> None:
    """The walk itself works: the manager's shell does reach etcd."""
    assert any(forbidden(m) for m in reach("corral.manager.loop"))
