"""Which coroutine runs each task kind an agent claims."""

from __future__ import annotations

from corral.agent import actions
from corral.agent.context import Handler
from corral.migration import source, target

HANDLERS: dict[str, Handler] = {
    "vm.create": actions.create,
    "vm.start": actions.start,
    "vm.shutdown": actions.shutdown,
    "vm.stop": actions.stop,
    "vm.suspend": actions.suspend,
    "vm.resume": actions.resume,
    "vm.reset": actions.reset,
    "vm.delete": actions.delete,
    "vm.migrate": source.migrate,  # on the VM's host
    "vm.receive": target.receive,  # on the migration's target
}
