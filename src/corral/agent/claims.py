"""Which VMs a task is working on, and how many tasks ever took each.

The monitor lists QEMU processes, then reads etcd, then asks each QEMU its state: a task that
takes a VM and lets it go within one pass (a quick start) leaves the pass holding an
observation from before the task. The count tells it so, and it reports nothing for that VM
this time instead of a stale `stopped` over the task's `running`.
"""

from __future__ import annotations

from collections.abc import Iterator


class Claims:
    def __init__(self) -> None:
        self.busy: set[int] = set()
        self._taken: dict[int, int] = {}

    def take(self, vmid: int) -> None:
        self.busy.add(vmid)
        self._taken[vmid] = self._taken.get(vmid, 0) + 1

    def release(self, vmid: int) -> None:
        self.busy.discard(vmid)

    def __contains__(self, vmid: object) -> bool:
        return vmid in self.busy

    def __iter__(self) -> Iterator[int]:
        return iter(self.busy)

    def mark(self) -> dict[int, int]:
        """Where the counts stand now, for `touched_since`."""
        return dict(self._taken)

    def touched_since(self, mark: dict[int, int], vmid: int) -> bool:
        """A task works on vmid now, or took it after `mark` was made."""
        return vmid in self.busy or self._taken.get(vmid, 0) != mark.get(vmid, 0)
