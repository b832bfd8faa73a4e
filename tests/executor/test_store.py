"""The executor's table lives beside the node's others in one SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pnode.executor.limits import SlotLimits
from p2pnode.executor.spec import InputFile, TaskSpec
from p2pnode.executor.store import TaskExists, TaskStore
from p2pnode.storage import Storage

SPEC = TaskSpec(image="busybox", command=("true",), inputs=(InputFile("a", b"\x00"),))
LIMITS = SlotLimits(cpu_cores=0.5, ram_bytes=2**26)


def test_tasks_survive_reopening_and_ids_are_unique(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    storage.upsert_peer("peer-1", ["/ip4/127.0.0.1/tcp/1"], source="seed")
    store = TaskStore(storage)
    instance = store.instance_id()
    store.record("t1", 2**255, SPEC, LIMITS, 1e10)
    with pytest.raises(TaskExists):
        store.record("t1", 1, SPEC, LIMITS, 1e10)
    store.update("t1", state="running", container_id="abc")
    storage.close()

    again = Storage.open_in(tmp_path)
    store = TaskStore(again)  # the migration runs again and changes nothing
    assert store.instance_id() == instance
    (record,) = store.unfinished()
    assert (record.task_id, record.deal_id, record.state) == ("t1", 2**255, "running")
    assert record.spec == SPEC and record.limits == LIMITS
    assert [r.task_id for r in store.for_deal(2**255)] == ["t1"]
    store.update("t1", state="finished", receipt={"x": 1})
    assert store.unfinished() == [] and store.get("t1").receipt == {"x": 1}  # type: ignore[union-attr]
    assert again.get_peer("peer-1") is not None  # the node's own tables are untouched
    with pytest.raises(ValueError, match="unknown task columns"):
        store.update("t1", spec="x")
    again.close()
