"""The shared job order: SAM selections of a task after the job computing their proposals, speed jobs last."""

from __future__ import annotations

import pytest

from defectbench.bench import expand_jobs, parse_config
from defectbench.bench.schedule import Schedule, leaders, proposal_group, sequential_order


def _jobs():
    sam = {"type": "sam", "model": "vit_h"}
    raw = {"experiment": "s", "seeds": [0], "datasets": [{"name": "sd900"}, {"name": "mt", "tasks": [
        {"train": "1to1-train", "test": "1to1-test"}]}],
        "methods": [{"name": "o", "select": "oracle-combine", **sam}, {"name": "p", "select": "prior", **sam},
                    {"name": "b", "select": "prior", "type": "sam", "model": "vit_b"},
                    {"name": "m", "type": "maps", "path": "x"}, {"name": "l", "select": "learned", **sam},
                    {"name": "net", "type": "sod", "model": "litenet"}],
        "speed": {"methods": ["net", "o"]}}
    return expand_jobs(parse_config(raw))


def test_leaders_group_by_task_and_model():
    jobs = _jobs()
    ids = [j.id for j in jobs]
    assert ids[-2:] == ["speed/sod-litenet", "speed/sam-vit_h"]
    assert leaders(jobs) == {"sd900-test/p/seed0": "sd900-test/o/seed0", "sd900-test/l/seed0": "sd900-test/o/seed0",
                             "mt-1to1-test/p/seed0": "mt-1to1-test/o/seed0", "mt-1to1-test/l/seed0": "mt-1to1-test/o/seed0"}
    by_id = {j.id: j for j in jobs}
    assert proposal_group(by_id["sd900-test/b/seed0"]) != proposal_group(by_id["sd900-test/o/seed0"])  # other model
    assert proposal_group(by_id["sd900-test/m/seed0"]) is None and proposal_group(by_id["speed/sam-vit_h"]) is None


def test_followers_wait_for_their_leader_and_speed_jobs_for_everything():
    jobs = _jobs()
    sched = Schedule(jobs)
    first = [j.id for j in sched.ready()]
    assert "sd900-test/o/seed0" in first and "mt-1to1-test/o/seed0" in first and "sd900-test/b/seed0" in first
    assert not any(i.endswith(("/p/seed0", "/l/seed0")) or i.startswith("speed/") for i in first)
    for i in first:
        sched.started(i)
    assert sched.ready() == []  # everything else waits
    sched.ended("sd900-test/o/seed0")
    assert [j.id for j in sched.ready()] == ["sd900-test/p/seed0", "sd900-test/l/seed0"]
    for i in first:
        if i != "sd900-test/o/seed0":
            sched.ended(i)
    rest = [j.id for j in sched.ready()]
    assert rest == ["sd900-test/p/seed0", "sd900-test/l/seed0", "mt-1to1-test/p/seed0", "mt-1to1-test/l/seed0"]
    for i in rest:
        sched.started(i)
    sched.ended(rest[0])
    assert sched.ready() == []  # speed jobs wait while any other job runs
    for i in rest[1:]:
        sched.ended(i)
    assert [j.id for j in sched.ready()] == ["speed/sod-litenet", "speed/sam-vit_h"]
    assert [j.id for j in sched.ready(speed_slots=1)] == ["speed/sod-litenet"]
    sched.started("speed/sod-litenet")
    assert sched.ready(speed_slots=1) == []  # one speed job at a time when asked
    sched.ended("speed/sod-litenet")
    assert [j.id for j in sched.ready(1, speed_slots=1)] == ["speed/sam-vit_h"]
    sched.started("speed/sam-vit_h")
    sched.ended("speed/sam-vit_h")
    assert sched.finished


def test_sequential_order_puts_leaders_first_and_speed_last():
    jobs = _jobs()
    order = [j.id for j in sequential_order(list(reversed(jobs)))]
    assert sorted(order) == sorted(j.id for j in jobs)
    assert order[-2:] == ["speed/sam-vit_h", "speed/sod-litenet"]
    for follower, leader in leaders(list(reversed(jobs))).items():
        assert order.index(leader) < order.index(follower)
    assert [j.id for j in sequential_order(jobs)] == [j.id for j in jobs]  # the matrix order already fits
    # a leader outside the jobs to run (finished, or not selected by --only) holds nobody back
    followers = [j for j in jobs if j.id.endswith("/p/seed0")]
    assert Schedule(followers).ready() == followers


def test_a_schedule_that_cannot_move_is_a_bug():
    jobs = _jobs()
    sched = Schedule(jobs)
    sched.waits_for["sd900-test/o/seed0"] = "sd900-test/p/seed0"  # a cycle
    sched.waits_for = {k: v for k, v in sched.waits_for.items() if k.startswith("sd900-test/")}
    sched.pending = [j for j in sched.pending if j.id in sched.waits_for]
    with pytest.raises(RuntimeError, match="waits forever"):
        sched.ready()
