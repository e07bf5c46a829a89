"""One writer per run directory under a race: processes that call ``rundir.acquire`` at the same moment,
hundreds of times, never both hold the lock (the create-then-write lock let 90 of 300 trials have two)."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from perception_r1.errors import UserError
from perception_r1.train import rundir

RACERS, TRIALS = 3, 200


def _race(run_dir, barrier, held, overlap) -> None:
    barrier.wait()
    try:
        lock = rundir.acquire(run_dir)
    except UserError:
        return
    with held.get_lock():
        held.value += 1
        if held.value > 1:
            overlap.value += 1
    time.sleep(0.01)  # hold it a while: a second holder, if any, arrives inside this window
    with held.get_lock():
        held.value -= 1
    rundir.release(lock)


@pytest.mark.slow  # 600 processes: 6-21 s; CI runs it
def test_racing_processes_never_both_hold_the_lock(tmp_path):
    ctx = multiprocessing.get_context("fork")  # fork: hundreds of racers start in milliseconds
    overlap, winners = ctx.Value("i", 0), 0
    for trial in range(TRIALS):
        run_dir = tmp_path / f"run{trial % 4}"  # reuse directories: released locks are retaken too
        barrier, held = ctx.Barrier(RACERS), ctx.Value("i", 0)
        racers = [ctx.Process(target=_race, args=(run_dir, barrier, held, overlap)) for _ in range(RACERS)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=30)
            assert racer.exitcode == 0
        winners += 1
    assert overlap.value == 0 and winners == TRIALS


def test_a_lock_whose_holder_died_is_free(tmp_path):
    ctx = multiprocessing.get_context("fork")
    holder = ctx.Process(target=lambda: (rundir.acquire(tmp_path), os._exit(0)))  # dies holding it
    holder.start()
    holder.join(timeout=30)
    assert (tmp_path / "run.lock").exists()
    lock = rundir.acquire(tmp_path)  # the kernel released the dead process's flock
    with pytest.raises(UserError, match="being written by process"):
        rundir.acquire(tmp_path)  # this process holds it now: a second taker is refused
    rundir.release(lock)
    assert not lock.exists()
