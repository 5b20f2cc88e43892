"""The supervisor's metrics slots: a replacement waits for one to come free
(retiring workers keep theirs until they exit) instead of failing."""

from __future__ import annotations

import pytest

from wsgiserver import supervisor
from wsgiserver.config import ServerConfig


def bare_supervisor(free: list[int], freed_after: int | None) -> supervisor.Supervisor:
    """A Supervisor with nothing but its slots, whose reaping frees slot 3
    after ``freed_after`` looks (a retiring worker exiting)."""
    made = object.__new__(supervisor.Supervisor)
    made.config = ServerConfig(shutdown_timeout=0.1)
    made._free_slots = free
    looks = []

    def reap() -> None:
        looks.append(None)
        if freed_after is not None and len(looks) == freed_after:
            made._free_slots.append(3)

    made._reap = reap  # type: ignore[method-assign]
    return made


def test_a_free_slot_is_taken_at_once():
    assert bare_supervisor([2], None)._await_slot()


def test_a_replacement_waits_for_a_retiring_worker_to_exit():
    made = bare_supervisor([], freed_after=3)
    assert made._await_slot()
    assert made._free_slots == [3]


def test_no_slot_within_the_grace_period_is_a_refusal_not_a_crash(monkeypatch):
    monkeypatch.setattr(supervisor, "_READY_TIMEOUT", 0.1)
    assert not bare_supervisor([], None)._await_slot()


@pytest.mark.parametrize("free", [[], [1]])
def test_check_workers_replaces_only_with_a_slot_free(free, monkeypatch):
    made = bare_supervisor(list(free), None)
    replaced = []
    made._replace = lambda worker: replaced.append(worker) or True  # type: ignore[method-assign]

    class Board:
        def get(self, slot, name):
            return 10 if name == "requests_2xx" else 0

    made.board = Board()  # type: ignore[assignment]
    worker = supervisor._Worker(1234, -1, 2, 5)
    made._workers = {1234: worker}
    made._check_workers()
    assert replaced == ([worker] if free else [])


def test_keep_count_spawns_only_into_free_slots():
    # Stuck workers killed while a --max-requests retiree still drains: three
    # workers are missing but one slot is free. Spawning three popped an
    # empty list and the supervisor died, its workers orphaned.
    made = bare_supervisor([4], None)
    made.config = ServerConfig(workers=3)
    made._backoff = 0.0
    made._workers = {1: supervisor._Worker(1, -1, 1, retiring=True)}
    spawned = []

    def spawn():
        slot = made._free_slots.pop()
        spawned.append(slot)

    made._spawn = spawn  # type: ignore[method-assign]
    made._keep_count()
    assert spawned == [4]
    made._free_slots.append(1)  # the retiree exited: the next look starts the rest
    made._keep_count()
    assert spawned == [4, 1]
