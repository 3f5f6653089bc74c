"""Paging and filtering list answers: pure functions over plain lists of output records.

A list is ordered by a key that never changes for a record (VMs by vmid, hosts by name, tasks
newest first by creation time and id). A page is the `limit` records after the cursor's key:
keyset paging, so records added or removed between two pages shift nothing; each record that
exists from the first page to the last is seen exactly once.

The body stays the JSON list it always was; the cursor of the next page, when there is one,
goes in the `Corral-Next-Cursor` header. Without `limit` the whole list is answered, as before
paging existed: an older client (an older CLI during a rolling upgrade) reads the body as the
complete list, and a silent default cut would make it wrong without a word.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from corral.api.errors import invalid
from corral.api.schemas import NodeOut, VMOut
from corral.api.wire import MAX_LIMIT, NEXT_CURSOR_HEADER
from corral.cluster.models import Node, Task, TaskState, VMStatus

T = TypeVar("T")
KeyPart = int | float | str
Key = tuple[KeyPart, ...]


@dataclass(frozen=True)
class Ordering(Generic[T]):
    """How one list is ordered: `kind` names it in its cursors (so one list's cursor is refused
    by another), `shape` is the types of its key's parts (what a cursor must decode to)."""

    kind: str
    key: Callable[[T], Key]
    shape: tuple[type, ...]
    newest_first: bool = False


VMS: Ordering[VMOut] = Ordering("vms", lambda v: (v.vmid,), (int,))
NODES: Ordering[NodeOut] = Ordering("nodes", lambda n: (n.name,), (str,))
# The same order over the hosts' records (a snapshot keeps them by name): one cursor serves
# both.
NODE_RECORDS: Ordering[Node] = Ordering("nodes", lambda n: (n.name,), (str,))
TASKS: Ordering[Task] = Ordering("tasks", lambda t: (t.created_at, t.id), (float, str),
                                 newest_first=True)


@dataclass(frozen=True)
class PageRequest:
    limit: int | None  # None: everything after the cursor
    after: Key | None  # None: from the start


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # None: this was the last page

    def headers(self) -> dict[str, str]:
        return {NEXT_CURSOR_HEADER: self.next_cursor} if self.next_cursor else {}


def encode_cursor(kind: str, key: Key) -> str:
    raw = json.dumps([kind, list(key)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _part_fits(value: object, wanted: type) -> bool:
    if isinstance(value, bool):  # JSON true is no vmid
        return False
    if wanted is float:
        return isinstance(value, (int, float))
    return isinstance(value, wanted)


def decode_cursor(cursor: str, ordering: Ordering[T]) -> Key:
    """The key a cursor of this list points after; 422 naming `cursor` if it is not one."""
    bad = invalid(f"not a cursor of this list ({ordering.kind}): pass the "
                  f"{NEXT_CURSOR_HEADER} header of the previous page unchanged", "cursor")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, parts = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise bad from None
    if (kind != ordering.kind or not isinstance(parts, list)
            or len(parts) != len(ordering.shape)
            or not all(_part_fits(p, t) for p, t in zip(parts, ordering.shape, strict=True))):
        raise bad
    return tuple(float(p) if t is float else p for p, t in zip(parts, ordering.shape,
                                                                strict=True))


def page_request(limit: int | None, cursor: str | None, ordering: Ordering[T],
                 max_limit: int = MAX_LIMIT) -> PageRequest:
    """Checked paging parameters; 422 naming the field otherwise."""
    if limit is not None and not 1 <= limit <= max_limit:
        raise invalid(f"limit must be between 1 and {max_limit}", "limit")
    return PageRequest(limit, decode_cursor(cursor, ordering) if cursor else None)


def cut_sorted(items: Sequence[T], ordering: Ordering[T], wanted: PageRequest) -> Page[T]:
    """`cut` of items already in the list's (oldest first) order: found by bisection, so a
    page of a list of thousands costs the page."""
    assert not ordering.newest_first
    start = 0 if wanted.after is None else bisect.bisect_right(items, wanted.after,
                                                               key=ordering.key)
    if wanted.limit is None or len(items) - start <= wanted.limit:
        return Page(list(items[start:]), None)
    here = list(items[start:start + wanted.limit])
    return Page(here, encode_cursor(ordering.kind, ordering.key(here[-1])))


def cut(items: Iterable[T], ordering: Ordering[T], wanted: PageRequest) -> Page[T]:
    """The page after `wanted.after`, in the list's order, and the cursor of the next one."""
    rev = ordering.newest_first
    keyed = sorted(((ordering.key(i), i) for i in items), key=lambda pair: pair[0],
                   reverse=rev)  # each key made once: a list may hold thousands
    if wanted.after is not None:
        after = wanted.after
        start = next((n for n, (k, _) in enumerate(keyed)
                      if (k < after if rev else k > after)), len(keyed))
        keyed = keyed[start:]
    ordered = [i for _, i in keyed]
    if wanted.limit is None or len(ordered) <= wanted.limit:
        return Page(ordered, None)
    items_here = ordered[:wanted.limit]
    return Page(items_here, encode_cursor(ordering.kind, ordering.key(items_here[-1])))


def vms_matching(vms: Sequence[VMOut], node: str | None, status: VMStatus | None
                 ) -> list[VMOut]:
    """The VMs on `node` with the `status` the API shows (None: any)."""
    return [v for v in vms
            if (node is None or v.node == node) and (status is None or v.status == status)]


def tasks_matching(tasks: Sequence[Task], vmid: int | None, node: str | None,
                   state: TaskState | None, *, kind: str | None = None,
                   parent: str | None = None) -> list[Task]:
    return [t for t in tasks
            if (vmid is None or t.vmid == vmid) and (node is None or t.node == node)
            and (state is None or t.state == state) and (kind is None or t.kind == kind)
            and (parent is None or t.parent == parent)]
