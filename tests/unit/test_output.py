"""ResponseOutput's file path over the fake transport and a manual clock:
a fast reader takes the whole file on the thread, a slow one is left to the
poller after a short wait, a file shorter than promised never spins."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from wsgiserver import output
from wsgiserver.clock import ManualClock
from wsgiserver.errors import ClientDisconnected
from wsgiserver.output import ResponseOutput

from .fakes import FakeTransport

BODY = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture
def file_fd() -> Iterator[int]:
    with tempfile.TemporaryFile() as handle:
        handle.write(BODY)
        handle.flush()
        yield handle.fileno()


def make(reads: int | None) -> tuple[ResponseOutput, FakeTransport, ManualClock]:
    clock = ManualClock()
    transport = FakeTransport(clock, reads=reads)
    out = ResponseOutput(transport, clock, write_timeout=30.0, high_water=65536,
                         low_water=16384)
    return out, transport, clock


def test_a_client_that_keeps_reading_gets_the_whole_file_on_the_thread(file_fd):
    out, transport, clock = make(reads=None)
    out.send_file(file_fd, 0, len(BODY))
    assert not out.pending
    assert transport.take_sent() == BODY
    assert out.sent == len(BODY)
    assert clock.monotonic() == 1000.0  # never waited


def test_a_client_that_stops_reading_is_left_to_the_poller_after_a_short_wait(file_fd):
    out, transport, clock = make(reads=4096)
    out.send_file(file_fd, 0, len(BODY))
    assert out.pending, "the rest is queued for the poller"
    assert transport.take_sent() == BODY[:4096]
    waited = clock.monotonic() - 1000.0
    assert 0 < waited <= output._KEEP_UP + 1e-9  # one short wait, not the write timeout
    os.lseek(file_fd, 0, os.SEEK_SET)  # the queue has a descriptor of its own
    transport.reads = None
    assert out.flush()
    assert transport.take_sent() == BODY[4096:]


def test_a_file_shorter_than_promised_fails_without_waiting(file_fd):
    out, transport, clock = make(reads=None)
    out.send_file(file_fd, 0, len(BODY) + 100)
    assert clock.monotonic() == 1000.0, "an ended file is not a full socket"
    assert transport.take_sent() == BODY
    with pytest.raises(ClientDisconnected, match="ended"):
        out.flush()


def test_a_client_that_takes_nothing_makes_no_progress(file_fd):
    """The write timeout counts from the last byte that left, not from a try."""
    out, transport, clock = make(reads=0)
    started = out.progress_at
    out.send_file(file_fd, 0, len(BODY))
    assert out.pending and transport.take_sent() == b""
    assert clock.monotonic() > started  # it waited a little for the client
    assert out.progress_at == started


# -- the spool: a producing application never waits while there is room on disk ----

def spooling(reads: int | None, per_response: int = 1 << 20, budget: int = 1 << 20):
    from wsgiserver.budget import Budget
    from wsgiserver.outqueue import SpoolSettings

    clock = ManualClock()
    transport = FakeTransport(clock, reads=reads)
    shared = Budget(budget)
    out = ResponseOutput(transport, clock, write_timeout=30.0, high_water=65536,
                         low_water=16384, spool=SpoolSettings(None, per_response, shared),
                         min_rate=1024)
    return out, transport, clock, shared


def test_past_the_memory_bound_a_stream_goes_to_the_spool_without_waiting():
    out, transport, clock, budget = spooling(reads=0)
    pieces = [bytes([n]) * 50_000 for n in range(10)]  # 500,000 bytes, 64 KiB in memory
    for piece in pieces:
        out.write(piece)
    assert clock.monotonic() == 1000.0  # never waited for the client
    assert 0 < budget.used <= 500_000
    transport.reads = None  # the client reads again: everything, in order
    assert out.flush()
    assert transport.take_sent() == b"".join(pieces)
    assert budget.used == 0


def test_past_its_share_of_the_spool_a_stream_waits_for_its_client():
    out, transport, clock, budget = spooling(reads=0, per_response=100_000)
    with pytest.raises(ClientDisconnected):
        for n in range(10):
            out.write(bytes([n]) * 50_000)
    assert clock.monotonic() >= 1000.0 + 20.0  # it waited, then the rate (1 KiB/s) cut it
    out.discard()
    assert budget.used == 0


def test_the_budget_across_connections_is_shared_and_given_back_on_discard():
    first, _, _, budget = spooling(reads=0, per_response=1 << 20, budget=200_000)
    for n in range(4):
        first.write(bytes([n]) * 60_000)
    used = budget.used
    assert used > 0
    first.discard()
    assert budget.used == 0


def test_the_minimum_rate_is_measured_over_a_sliding_window():
    out, transport, clock, _ = spooling(reads=0)
    out.write(b"x" * 500_000)
    out.start_window()
    transport.reads = 100_000  # a fast start ...
    out.flush()
    clock.advance(output.RATE_WINDOW)
    assert not out.too_slow()  # 100,000 bytes in 20 s: the window slides on
    clock.advance(output.RATE_WINDOW / 2)
    transport.reads = 100  # ... then a trickle, whatever came before
    out.flush()
    clock.advance(output.RATE_WINDOW / 2)
    assert out.too_slow()
    assert "slower than 1024" in out.slow_reason()


def test_a_spool_write_the_disk_cuts_short_never_corrupts_what_is_sent(monkeypatch, tmp_path):
    import io

    class FillsOnce(io.FileIO):
        """The disk fills half-way through the second write, then has room again."""

        writes = 0

        def write(self, data) -> int:  # type: ignore[override]
            FillsOnce.writes += 1
            if FillsOnce.writes == 2:
                super().write(memoryview(data)[:len(data) // 2])
                raise OSError(28, "No space left on device")
            return super().write(data)

    monkeypatch.setattr(tempfile, "TemporaryFile",
                        lambda *args, **kwargs: FillsOnce(str(tmp_path / "spool"), "w+b"))
    out, transport, clock, budget = spooling(reads=0)
    pieces = [bytes([n]) * size for n, size in enumerate((20_000, 50_000, 10_000, 40_000))]
    for piece in pieces:  # memory; the spool; the spool cut short: memory; the spool again
        out.write(piece)
    assert clock.monotonic() == 1000.0  # never waited for the client
    transport.reads = None
    assert out.flush()
    assert transport.take_sent() == b"".join(pieces)
    assert budget.used == 0


def test_a_spool_file_holds_no_more_than_the_responses_share(monkeypatch, tmp_path):
    import io

    class Measured(io.FileIO):
        """A spool file that keeps its largest size."""

        largest = 0

        def write(self, data) -> int:  # type: ignore[override]
            written = super().write(data)
            Measured.largest = max(Measured.largest, self.tell())
            return written

    monkeypatch.setattr(tempfile, "TemporaryFile",
                        lambda *args, **kwargs: Measured(str(tmp_path / "spool"), "w+b"))
    out, transport, clock, budget = spooling(reads=0, per_response=100_000)
    out.write(b"a" * 70_000)  # past the memory bound: spooled
    transport.reads = 50_000
    out.flush()  # the client takes 50,000 of it: 20,000 wait, 70,000 are on disk
    transport.reads = 0
    out.write(b"b" * 50_000)  # within memory's bound; the spool file has no room for it
    assert Measured.largest <= 100_000
    assert clock.monotonic() == 1000.0  # never waited for the client
    transport.reads = None
    assert out.flush()
    assert transport.take_sent() == b"a" * 70_000 + b"b" * 50_000
    assert budget.used == 0
