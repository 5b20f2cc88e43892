"""The pollers' one-shot guarantee, and when arming wakes a wait.

Socket pairs only (no network); every wait is bounded.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from wsgiserver import system
from wsgiserver.poller import READ, WRITE, Poller, SelectorPoller, make_poller

KINDS = [kind for kind, present in (("epoll", system.HAS_EPOLL), ("poll", system.HAS_POLL),
                                    ("select", True)) if present]


@pytest.fixture(params=KINDS)
def poller(request: pytest.FixtureRequest) -> Iterator[Poller]:
    made = make_poller(request.param)
    yield made
    made.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()


def test_a_ready_descriptor_fires_once_until_armed_again(poller, pair):
    left, right = pair
    poller.register(left.fileno(), READ)
    right.send(b"x")
    assert poller.wait(2.0) == left.fileno()
    assert poller.wait(0.05) is None, "still readable, but not armed"
    poller.rearm(left.fileno(), READ)
    assert poller.wait(2.0) == left.fileno()


def test_write_interest_fires_on_a_writable_socket(poller, pair):
    left, _ = pair
    poller.register(left.fileno(), WRITE)
    assert poller.wait(2.0) == left.fileno()


def test_arming_from_another_thread_ends_a_wait_in_progress(poller, pair):
    left, right = pair
    right.send(b"x")  # ready already: only arming it is missing
    got: list[int | None] = []
    waiter = threading.Thread(target=lambda: got.append(poller.wait(5.0)))
    waiter.start()
    try:
        # Armed while the other thread waits (or about to): it must see it,
        # whether by a wake-up or because its wait began after the arming.
        poller.register(left.fileno(), READ)
    finally:
        waiter.join(10)
    assert not waiter.is_alive()
    if got == [None]:  # woken before the descriptor was seen: the next wait has it
        got = [poller.wait(2.0)]
    assert got == [left.fileno()]


@pytest.mark.parametrize("kind", [kind for kind in KINDS if kind != "epoll"])
def test_arming_between_waits_costs_no_wake_up(kind, pair):
    """The leader re-arms the connection it served before its own next wait:
    no write to the wake-up pipe, no empty turn of select()."""
    poller = make_poller(kind)
    assert isinstance(poller, SelectorPoller)
    pokes: list[None] = []
    poke = poller._wake.poke
    poller._wake.poke = lambda: (pokes.append(None), poke())[1]  # type: ignore[method-assign]
    try:
        left, right = pair
        right.send(b"x")
        for _ in range(3):
            poller.rearm(left.fileno(), READ)
            assert poller.wait(2.0) == left.fileno()
        assert pokes == []
        poller.wake()  # an explicit wake still ends a wait
        assert poller.wait(2.0) is None
    finally:
        poller.close()


def test_no_ready_descriptor_starves(poller):
    """Five connections always ready, each re-armed as soon as it is served
    (a busy keep-alive client): every one is served in turn. select lists
    ready descriptors by number; taking its first each time served the
    lowest for ever."""
    pairs = [socket.socketpair() for _ in range(5)]
    try:
        for left, right in pairs:
            right.send(b"x")
            poller.register(left.fileno(), READ)
        served = []
        for _ in range(15):
            fd = poller.wait(2.0)
            assert fd is not None
            served.append(fd)
            poller.rearm(fd, READ)
        assert set(served) == {left.fileno() for left, _ in pairs}
        assert max(served.count(fd) for fd in set(served)) <= 4
    finally:
        for left, right in pairs:
            left.close()
            right.close()


def test_a_descriptor_unregistered_after_it_was_found_is_not_handed_out(poller):
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        for left, right in pairs:
            right.send(b"x")
            poller.register(left.fileno(), READ)
        first = poller.wait(2.0)
        others = {left.fileno() for left, _ in pairs} - {first}
        gone = min(others)
        poller.unregister(gone)  # closed by another thread meanwhile
        rest = [poller.wait(0.2) for _ in range(2)]
        assert gone not in rest
        assert (others - {gone}) <= set(rest)
    finally:
        for left, right in pairs:
            left.close()
            right.close()


def test_a_descriptor_forgotten_after_its_close_never_fires_and_its_number_serves_again(poller):
    # The server closes a connection's socket before it forgets it: epoll
    # dropped it with the close, poll and select must drop it from their table.
    left, right = socket.socketpair()
    number = left.fileno()
    poller.register(number, READ)
    right.close()  # readable (end of stream) once armed
    left.close()
    poller.unregister(number, closed=True)
    assert poller.wait(0.05) is None, "a closed descriptor was reported"
    again, other = socket.socketpair()
    try:
        assert number in (again.fileno(), other.fileno()), "the system did not reuse the number"
        reused = again if again.fileno() == number else other
        poller.register(reused.fileno(), READ)
        (other if reused is again else again).send(b"x")
        assert poller.wait(2.0) == number
    finally:
        again.close()
        other.close()
