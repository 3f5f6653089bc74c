"""Paging list answers: every record present from the first page to the last is served
exactly once, whatever is added or removed between pages; filters; bad parameters are
refused naming the field."""

from __future__ import annotations

import base64
import json
import random

import pytest

from corral.api import paging, wire
from corral.api.errors import ApiError
from corral.api.schemas import NodeOut, VMOut
from corral.cluster.models import RunState, Task, TaskState, VMStatus


def vm(vmid: int, node: str = "n1", status: VMStatus = VMStatus.STOPPED) -> VMOut:
    return VMOut(vmid=vmid, name=f"vm{vmid}", node=node, state=RunState.STOPPED,
                 status=status.value, memory_mb=128, cores=1, disks=[], image=None,
                 startup=0, description="", pid=None, accel=None, started_at=None,
                 message="")


def task(ident: str, created_at: float, state: TaskState = TaskState.OK) -> Task:
    return Task(id=ident, kind="vm.start", node="n1", vmid=101, created_at=created_at,
                state=state)


def all_pages(items: list[VMOut], limit: int) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        page = paging.cut(items, paging.VMS, paging.page_request(limit, cursor, paging.VMS))
        pages.append([v.vmid for v in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def test_no_limit_is_the_whole_list_in_order_without_a_cursor() -> None:
    page = paging.cut([vm(103), vm(101), vm(102)], paging.VMS, paging.page_request(
        None, None, paging.VMS))
    assert [v.vmid for v in page.items] == [101, 102, 103]
    assert page.next_cursor is None and page.headers() == {}


def test_pages_cover_the_list_once_and_the_last_has_no_cursor() -> None:
    items = [vm(i) for i in (105, 101, 104, 102, 103)]
    assert all_pages(items, 2) == [[101, 102], [103, 104], [105]]
    assert all_pages(items, 5) == [[101, 102, 103, 104, 105]]


@pytest.mark.parametrize("seed", range(20))
def test_inserts_and_deletes_between_pages_skip_and_repeat_nothing(seed: int) -> None:
    rng = random.Random(seed)
    vmids = set(rng.sample(range(100, 400), 30))
    always = set(vmids)  # present from the first page to the last
    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = paging.cut([vm(i) for i in vmids], paging.VMS,
                          paging.page_request(rng.randint(1, 7), cursor, paging.VMS))
        seen += [v.vmid for v in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        for _ in range(3):
            new = rng.randint(100, 400)
            vmids.add(new)
            gone = rng.choice(sorted(vmids))
            vmids.discard(gone)
            always.discard(gone)
    assert len(seen) == len(set(seen)), "a record was served twice"
    assert always <= set(seen), "a record present all along was skipped"
    assert seen == sorted(seen)


def test_tasks_go_newest_first_and_ties_in_time_are_ordered_by_id() -> None:
    tasks = [task("a", 1.0), task("c", 2.0), task("b", 2.0), task("d", 3.5)]
    first = paging.cut(tasks, paging.TASKS, paging.page_request(2, None, paging.TASKS))
    assert [t.id for t in first.items] == ["d", "c"]
    tasks.append(task("e", 4.0))  # a newer task belongs before the pages already read
    cursor = first.next_cursor
    rest = paging.cut(tasks, paging.TASKS, paging.page_request(2, cursor, paging.TASKS))
    assert [t.id for t in rest.items] == ["b", "a"] and rest.next_cursor is None


def test_nodes_are_paged_by_name() -> None:
    nodes = [NodeOut(name=n, online=True, cpus=1, memory_mb=1, accel=None, address=None,
                     agent_url=None, versions={}, started_at=None, usage=None, maintenance=False,
                     vms=0, vms_running=0)
             for n in ("n3", "n1", "n2")]
    first = paging.cut(nodes, paging.NODES, paging.page_request(2, None, paging.NODES))
    assert [n.name for n in first.items] == ["n1", "n2"]
    last = paging.cut(nodes, paging.NODES,
                      paging.page_request(2, first.next_cursor, paging.NODES))
    assert [n.name for n in last.items] == ["n3"]


def test_filters_by_node_and_status() -> None:
    vms = [vm(101, "n1", VMStatus.RUNNING), vm(102, "n2", VMStatus.RUNNING),
           vm(103, "n1", VMStatus.STOPPED)]
    assert [v.vmid for v in paging.vms_matching(vms, "n1", None)] == [101, 103]
    assert [v.vmid for v in paging.vms_matching(vms, None, VMStatus.RUNNING)] == [101, 102]
    assert [v.vmid for v in paging.vms_matching(vms, "n1", VMStatus.RUNNING)] == [101]
    assert paging.vms_matching(vms, "n9", None) == []
    tasks = [task("a", 1.0, TaskState.OK), task("b", 2.0, TaskState.ERROR)]
    assert [t.id for t in paging.tasks_matching(tasks, 101, "n1", TaskState.ERROR)] == ["b"]
    assert paging.tasks_matching(tasks, 102, None, None) == []


def test_tasks_filter_by_kind_and_bulk_parent() -> None:
    parent = Task(id="b1", kind="node.bulk", node="n1", created_at=1.0)
    child = Task(id="b1-101", kind="vm.start", node="n1", vmid=101, parent="b1",
                 created_at=2.0)
    other = task("c", 3.0)
    tasks = [parent, child, other]
    assert paging.tasks_matching(tasks, None, None, None, kind="node.bulk") == [parent]
    assert paging.tasks_matching(tasks, None, "n1", None, parent="b1") == [child]
    assert paging.tasks_matching(tasks, None, None, None, parent="zz") == []


def raw_cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


BAD_PARAMS: list[tuple[int | None, str | None, str]] = [
    (0, None, "limit"),
    (-1, None, "limit"),
    (wire.MAX_LIMIT + 1, None, "limit"),
    (None, "not base64!", "cursor"),
    (None, base64.urlsafe_b64encode(b"\xff\xfe").decode(), "cursor"),
    (None, raw_cursor({"vms": 1}), "cursor"),
    (None, raw_cursor(["nodes", ["n1"]]), "cursor"),  # another list's cursor
    (None, raw_cursor(["vms", ["101"]]), "cursor"),
    (None, raw_cursor(["vms", [True]]), "cursor"),
    (None, raw_cursor(["vms", [101, 102]]), "cursor"),
    (None, "", "-"),  # an empty cursor is no cursor: accepted
]


@pytest.mark.parametrize(("limit", "cursor", "field"), BAD_PARAMS)
def test_bad_parameters_are_refused_naming_the_field(limit: int | None, cursor: str | None,
                                                     field: str) -> None:
    if field == "-":
        assert paging.page_request(limit, cursor, paging.VMS).after is None
        return
    with pytest.raises(ApiError) as caught:
        paging.page_request(limit, cursor, paging.VMS)
    assert (caught.value.status, caught.value.field) == (422, field)


def test_a_cursor_round_trips_and_a_task_limit_may_have_its_own_bound() -> None:
    cursor = paging.encode_cursor("tasks", (1.5, "abc"))
    assert "=" not in cursor
    assert paging.page_request(None, cursor, paging.TASKS).after == (1.5, "abc")
    assert paging.page_request(5000, None, paging.TASKS, max_limit=10_000).limit == 5000


@pytest.mark.parametrize("seed", range(5))
def test_a_sorted_list_is_cut_as_any_list_is(seed: int) -> None:
    rng = random.Random(seed)
    items = [vm(v) for v in sorted(rng.sample(range(100, 400), 60))]
    for _ in range(50):
        after = rng.choice([None, rng.randint(90, 410)])
        limit = rng.choice([None, 1, 7, 60, 100])
        wanted = paging.PageRequest(limit, (after,) if after is not None else None)
        assert (paging.cut_sorted(items, paging.VMS, wanted)
                == paging.cut(reversed(items), paging.VMS, wanted))
