"""The activity board: what each worker is doing, in one process or shared through files."""

from __future__ import annotations

import time

from pytest_oompa.engine.activity import ActivityBoard


def test_phases_in_one_process():
    board = ActivityBoard()
    board.enter("w0", "c1", "agent, attempt 1")
    board.enter("w1", "", "waiting for tasks")
    board.ended("w0", "merged")
    board.stopped("w1")
    now = board.snapshot()
    assert list(now) == ["w0", "w1"]
    assert (now["w0"].item, now["w0"].phase, now["w0"].last) == ("c1", "agent, attempt 1", "merged")
    assert now["w0"].changes == 2 and now["w0"].busy
    assert now["w1"].phase == "stopped" and not now["w1"].busy
    assert 0 <= now["w0"].elapsed() < 5


def test_a_phase_change_restarts_the_clock_and_keeps_the_last_outcome():
    board = ActivityBoard()
    board.enter("w0", "i1", "agent")
    board.ended("w0", "claimed")
    first = board.snapshot()["w0"]
    time.sleep(0.01)
    board.enter("w0", "i2", "review round 1")
    second = board.snapshot()["w0"]
    assert second.since > first.since and second.last == "claimed"


def test_boards_of_several_processes_share_through_a_folder(tmp_path):
    node_a, node_b = ActivityBoard(tmp_path), ActivityBoard(tmp_path)
    node_a.enter("w0", "i1", "agent")
    node_b.enter("w1", "c2", "sync with main")
    controller = ActivityBoard(tmp_path)  # announces nothing: reads the others
    seen = controller.snapshot()
    assert {w: a.phase for w, a in seen.items()} == {"w0": "agent", "w1": "sync with main"}
    (tmp_path / "garbage.json").write_text("{not json")
    assert set(controller.snapshot()) == {"w0", "w1"}  # a broken file is skipped, not fatal
    assert not list(tmp_path.glob(".*.tmp"))  # writes are atomic: no temporary left


def test_an_unwritable_folder_costs_the_worker_nothing(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    board = ActivityBoard(blocked / "activity")  # a folder under a file: cannot exist
    board.enter("w0", "i1", "agent")  # no exception
    assert board.snapshot() == {}
