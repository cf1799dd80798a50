import json
import threading

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pytest_oompa.engine.tasks import TaskQueue, valid_task_id


def seed(queue: TaskQueue, *ids: str) -> None:
    queue.ensure_dirs()
    for t in ids:
        (queue.root / "pending" / f"{t}.json").write_text(json.dumps({"id": t}))


def test_claim_results(tmp_path):
    q = TaskQueue(tmp_path)
    seed(q, "a", "b")
    first = q.claim(["a"], "w0")
    second = q.claim(["a", "b", "zz", "../x"], "w1")
    assert first.claimed == ("a",)
    assert (second.claimed, second.taken, second.not_found, second.invalid) == (
        ("b",),
        ("a",),
        ("zz",),
        ("../x",),
    )
    assert q.owned_by("w0") == ["a"] and q.owned_by("w1") == ["b"]


def test_one_winner_among_concurrent_claimers(tmp_path):
    q = TaskQueue(tmp_path)
    seed(q, "only")
    barrier = threading.Barrier(8)
    results = []

    def claim(i: int) -> None:
        barrier.wait()
        results.append(q.claim(["only"], f"w{i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r.claimed) for r in results) == 1
    assert sum(len(r.taken) for r in results) == 7


def test_complete_annotates(tmp_path):
    q = TaskQueue(tmp_path)
    seed(q, "a")
    q.claim(["a"], "w0")
    report = q.complete(["a"], {"completed-by": "w0", "merged-commit": "abc"})
    data = json.loads((q.root / "complete" / "a.json").read_text())
    assert report.completed == ["a"]
    assert data == {"id": "a", "completed-by": "w0", "merged-commit": "abc"}
    assert q.ids("current") == []


def test_invalid_task_json_is_reported_and_moved_as_is(tmp_path):
    q = TaskQueue(tmp_path)
    q.ensure_dirs()
    (q.root / "pending" / "bad.json").write_text("{not json")
    q.claim(["bad"], "w0")
    report = q.complete(["bad"], {"completed-by": "w0"})
    assert report.completed == ["bad"]
    assert "not valid task JSON" in report.problems[0]
    assert (q.root / "complete" / "bad.json").read_text() == "{not json"


def test_files_that_are_not_task_ids_are_ignored(tmp_path):
    q = TaskQueue(tmp_path)
    seed(q, "ok")
    (q.root / "pending" / "notes.txt").write_text("x")
    (q.root / "pending" / "bad name.json").write_text("{}")
    assert q.ids("pending") == ["ok"]


def test_adopt_tasks_moved_by_hand(tmp_path):
    q = TaskQueue(tmp_path)
    seed(q, "a", "b")
    q.claim(["a"], "w0")
    (q.root / "pending" / "b.json").rename(q.root / "current" / "b.json")
    assert q.adopt_unowned("w1") == ["b"]
    assert q.owned_by("w1") == ["b"]


def test_the_path_helper_refuses_invalid_ids(tmp_path):
    with pytest.raises(ValueError):
        TaskQueue(tmp_path)._file("pending", "../../etc/passwd")


class QueueMachine(RuleBasedStateMachine):
    """Claims, completions, recycles and racing claimers never lose or duplicate a task."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile
        from pathlib import Path

        self.dir = tempfile.TemporaryDirectory()
        self.q = TaskQueue(Path(self.dir.name))
        self.ids = [f"t{i}" for i in range(6)]
        seed(self.q, *self.ids)
        self.owner: dict[str, str] = {}
        self.done: set[str] = set()

    def teardown(self) -> None:
        self.dir.cleanup()

    workers = st.sampled_from(["w0", "w1", "w2"])
    some_ids = st.lists(st.sampled_from([f"t{i}" for i in range(6)] + ["nope", "../x"]), max_size=3)

    @rule(worker=workers, ids=some_ids)
    def claim(self, worker, ids):
        result = self.q.claim(ids, worker)
        for t in result.claimed:
            assert t not in self.owner and t not in self.done
            self.owner[t] = worker
        assert all(not valid_task_id(t) for t in result.invalid)

    @rule()
    def race(self):
        pending = self.q.ids("pending")
        if not pending:
            return
        results = []
        threads = [
            threading.Thread(target=lambda w=w: results.append(self.q.claim(pending[:1], w)))
            for w in ("w0", "w1", "w2")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(len(r.claimed) for r in results) == 1
        (winner,) = [w for w in ("w0", "w1", "w2") if pending[0] in self.q.owned_by(w)]
        self.owner[pending[0]] = winner

    @rule(worker=workers)
    def complete(self, worker):
        held = self.q.owned_by(worker)
        self.q.complete(held, {"completed-by": worker})
        for t in held:
            self.owner.pop(t)
            self.done.add(t)

    @rule(worker=workers)
    def recycle(self, worker):
        for t in self.q.recycle(self.q.owned_by(worker)):
            self.owner.pop(t)

    @invariant()
    def every_task_is_in_exactly_one_place(self):
        places = [*self.q.ids("pending"), *self.q.ids("current"), *self.q.ids("complete")]
        assert sorted(places) == sorted(self.ids)
        assert set(self.q.ids("current")) == set(self.owner)
        assert set(self.q.ids("complete")) == self.done


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=40, stateful_step_count=20, deadline=None)
