"""One HTTP/2 stream's pending output (an OutputQueue with its connection's
Share, as Http2Stream holds it): memory within the stream's and the
connection's bounds, a spool file past them within the server's budget,
file ranges, and every byte given back."""

from __future__ import annotations

import os

import pytest

from wsgiserver.budget import Budget, FileCount
from wsgiserver.outqueue import FileEnded, OutputQueue, Share, SpoolSettings

from .test_outqueue import take_all as drain


def StreamOutput(share: Share, high_water: int, spool: SpoolSettings | None) -> OutputQueue:
    """A stream's output as Http2Stream makes it."""
    return OutputQueue(high_water, spool, share)


def test_bytes_within_the_bounds_stay_in_memory_and_come_out_in_order():
    share = Share(10_000)
    output = StreamOutput(share, high_water=5_000, spool=None)
    output.add(b"a" * 3000)
    output.add(b"b" * 1000)
    assert (output.in_memory, share.used) == (4000, 4000)
    assert output.take(2500) == b"a" * 2500
    assert drain(output) == b"a" * 500 + b"b" * 1000
    assert (output.in_memory, share.used, bool(output)) == (0, 0, False)


def test_past_the_streams_bound_bytes_go_to_the_spool_in_one_range():
    share = Share(1 << 20)
    budget, files = Budget(1 << 20), FileCount(10)
    output = StreamOutput(share, high_water=4000, spool=SpoolSettings(None, 100_000, budget,
                                                                      files))
    output.add(b"m" * 3000)
    for letter in b"xyz":
        output.add(bytes([letter]) * 2000)  # each past the bound: spooled
    assert output.in_memory == 3000 and budget.used == 6000 and files.open == 1
    assert len(output._queue) == 2  # memory, then one contiguous spooled range
    assert drain(output, 1500) == b"m" * 3000 + b"x" * 2000 + b"y" * 2000 + b"z" * 2000
    assert budget.used == 0
    assert files.open == 0


def test_past_the_connections_share_too():
    share = Share(5000)
    share.used = 4500  # other streams hold most of it
    budget = Budget(1 << 20)
    output = StreamOutput(share, high_water=1 << 20, spool=SpoolSettings(None, 1 << 20, budget))
    output.add(b"s" * 1000)
    assert output.in_memory == 0 and budget.used == 1000


@pytest.mark.parametrize("spool", [None, SpoolSettings(None, 0, Budget(1 << 20)),
                                   SpoolSettings(None, 1 << 20, Budget(10))])
def test_without_spool_room_the_bytes_stay_in_memory(spool):
    share = Share(100)
    output = StreamOutput(share, high_water=100, spool=spool)
    output.add(b"q" * 500)
    assert output.in_memory == 500 and share.over  # the application is made to wait


def test_a_file_range_and_a_file_shorter_than_announced(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    try:
        output = StreamOutput(Share(100), high_water=100, spool=None)
        output.add_file(fd, 2, 5)
        assert drain(output, 2) == b"23456"
        output.add_file(fd, 8, 5)  # only 2 bytes there
        assert output.take(10) == b"89"
        with pytest.raises(FileEnded):
            output.take(10)
        output.clear()
    finally:
        os.close(fd)


def test_clear_gives_everything_back():
    share, budget, files = Share(1000), Budget(1 << 20), FileCount(10)
    output = StreamOutput(share, high_water=100, spool=SpoolSettings(None, 1 << 20, budget,
                                                                     files))
    output.add(b"a" * 100)
    output.add(b"b" * 5000)
    assert share.used == 100 and budget.used == 5000 and files.open == 1
    output.clear()
    output.clear()
    assert (share.used, budget.used, files.open, bool(output)) == (0, 0, 0, False)
