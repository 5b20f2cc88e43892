"""RequestBody: where a body is kept, its share of the server's budgets, and
a close that never fails."""

from __future__ import annotations

import pytest

from wsgiserver.body import RequestBody, SpoolFull
from wsgiserver.budget import BodyBudgets, Budget, FileCount


def budgets(memory: int = 1 << 20, spool: int = 1 << 20, files: int = 10) -> BodyBudgets:
    return BodyBudgets(Budget(memory), Budget(spool), FileCount(files))


def test_a_small_body_stays_in_memory_and_gives_its_share_back():
    shared = budgets()
    body = RequestBody(1024, budgets=shared)
    body.write(b"x" * 500)
    assert not body.spooled and shared.memory.used == 500
    assert body.finish().read() == b"x" * 500
    body.close()
    assert shared.memory.used == 0


def test_past_the_memory_budget_a_small_body_goes_to_disk():
    shared = budgets(memory=100)
    body = RequestBody(1024, budgets=shared)
    body.write(b"a" * 80)
    body.write(b"b" * 80)  # 160 > 100: spilled, however small
    assert body.spooled and shared.memory.used == 0 and shared.files.open == 1
    assert body.finish().read() == b"a" * 80 + b"b" * 80
    body.close()
    assert shared.spool.used == 0 and shared.files.open == 0


def test_a_reserved_body_takes_its_whole_length_at_once():
    shared = budgets(spool=1000)
    first, second = RequestBody(10, budgets=shared), RequestBody(10, budgets=shared)
    assert first.reserve(800)
    assert not second.reserve(300)  # refused before any of its bytes
    first.write(b"z" * 800)
    assert shared.spool.used == 800  # taken once, at the reservation
    first.close()
    second.close()
    assert shared.spool.used == 0


def test_a_chunked_body_past_the_spool_budget_is_refused():
    shared = budgets(spool=100)
    body = RequestBody(10, budgets=shared)
    with pytest.raises(SpoolFull):
        body.write(b"q" * 200)
    body.close()
    assert shared.spool.used == 0 and shared.files.open == 0


def test_no_spool_file_without_a_descriptor_to_spare():
    shared = BodyBudgets(Budget(1 << 20), Budget(1 << 20), FileCount(3, lambda: 3))
    with pytest.raises(SpoolFull):
        RequestBody(10, budgets=shared).write(b"w" * 20)


def test_close_never_raises_when_the_disk_fails_to_flush():
    body = RequestBody(10, budgets=budgets())
    body.write(b"d" * 20)

    class FullDisk:
        def close(self) -> None:
            raise OSError(28, "No space left on device")

    real = body._file
    body._file = FullDisk()  # type: ignore[assignment]
    body.close()  # must not raise: closing a connection must close its socket
    assert real is not None
    real.close()


def test_the_body_clock_slides_its_rate_window_and_keeps_its_hard_cap():
    from wsgiserver.body import BODY_RATE_WINDOW, BodyClock

    clock = BodyClock(100.0, body_timeout=30.0, max_seconds=300.0, min_rate=1000)
    assert clock.deadline() == 130.0  # the rate is first judged after body_timeout
    clock.arrived(125.0)
    assert clock.on_time(130.0, 30_000)  # 30,000 B in 30 s: met, the window slides
    assert clock.deadline() == 130.0 + BODY_RATE_WINDOW
    clock.arrived(149.0)
    assert not clock.on_time(150.0, 30_000 + 19_999)  # 19,999 B in the next 20 s

    capped = BodyClock(100.0, body_timeout=30.0, max_seconds=300.0, min_rate=0)
    capped.arrived(399.0)
    assert capped.deadline() == 400.0 and capped.on_time(399.0, 1)
    assert not capped.on_time(400.0, 1)  # a byte a moment ago, but 300 s in all
    assert not BodyClock(0.0, 30.0, 300.0, 0).on_time(30.0, 10)  # no byte for 30 s
