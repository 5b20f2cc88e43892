"""The output queue both protocols use (outqueue.py), alone: memory within its
bounds, the spool past them within the budget, file ranges, the front taken
as bytes or consumed as a socket took it, and every byte, file and
descriptor given back."""

from __future__ import annotations

import io
import os
import tempfile

import pytest

from wsgiserver.budget import Budget, FileCount
from wsgiserver.outqueue import FileEnded, FileRange, OutputQueue, Share, SpoolSettings


def spooling(high_water: int = 1000, per_response: int = 1 << 20, budget: int = 1 << 20,
             files: int = 10, share: Share | None = None):
    settings = SpoolSettings(None, per_response, Budget(budget), FileCount(files))
    return OutputQueue(high_water, settings, share), settings


def take_all(queue: OutputQueue, size: int = 700) -> bytes:
    taken = b""
    for _ in range(100_000):
        piece = queue.take(size)
        if not piece:
            return taken
        taken += piece
    raise AssertionError("the queue never emptied")


def kinds(queue: OutputQueue) -> list[str]:
    return ["spool" if type(item) is FileRange and item.spooled else
            "file" if type(item) is FileRange else "memory" for item in queue.items]


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@pytest.fixture
def file_fd(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    yield fd
    os.close(fd)


# -- memory ------------------------------------------------------------------

def test_within_the_bound_bytes_stay_in_memory_and_are_counted_in_the_share():
    share = Share(10_000)
    queue = OutputQueue(5000, None, share)
    queue.add(b"a" * 3000)
    queue.add(memoryview(b"b" * 1000))
    assert kinds(queue) == ["memory", "memory"]
    assert (queue.in_memory, share.used, bool(queue)) == (4000, 4000, True)
    assert take_all(queue) == b"a" * 3000 + b"b" * 1000
    assert (queue.in_memory, share.used, bool(queue)) == (0, 0, False)


def test_take_gives_at_most_size_bytes_of_the_front_piece(file_fd):
    queue = OutputQueue(1000, None)
    queue.add(b"abc")
    queue.add_file(file_fd, 4, 4)
    assert queue.take(2) == b"ab"
    assert queue.take(100) == b"c"  # the rest of the front piece, never more
    assert queue.take(3) == b"456"
    assert queue.take(3) == b"7"
    assert queue.take(3) == b"" and not queue


def test_consume_advances_the_front_as_a_socket_took_it():
    share = Share(1000)
    queue = OutputQueue(1000, None, share)
    queue.add(b"hello world")
    queue.consume(0)
    queue.consume(6)
    assert bytes(queue.items[0]) == b"world" and (queue.in_memory, share.used) == (5, 5)
    queue.push_front(memoryview(b">> "))
    assert (queue.in_memory, share.used) == (8, 8)
    assert take_all(queue) == b">> world"
    assert share.used == 0


def test_bytes_made_in_full_stay_in_memory_past_every_bound():
    queue, settings = spooling(high_water=100)
    queue.add(b"x" * 5000, spill=False)
    assert kinds(queue) == ["memory"] and settings.budget.used == 0
    assert queue.in_memory == 5000


# -- the spool -----------------------------------------------------------------

def test_past_the_bound_bytes_go_to_the_spool_in_one_contiguous_range():
    queue, settings = spooling(high_water=4000)
    queue.add(b"m" * 3000)
    for letter in b"xyz":
        queue.add(bytes([letter]) * 2000)
    assert kinds(queue) == ["memory", "spool"]
    assert queue.in_memory == 3000 and settings.budget.used == 6000
    assert settings.files is not None and settings.files.open == 1
    assert take_all(queue, 1500) == b"m" * 3000 + b"x" * 2000 + b"y" * 2000 + b"z" * 2000
    assert settings.budget.used == 0


def test_past_the_connections_share_bytes_spool_though_the_response_has_room():
    share = Share(5000)
    share.used = 4500  # other responses hold most of it
    queue, settings = spooling(high_water=1 << 20, share=share)
    queue.add(b"s" * 1000)
    assert kinds(queue) == ["spool"] and queue.in_memory == 0 and share.used == 4500


def test_once_the_queue_ends_in_the_spool_small_writes_follow_it_there():
    queue, settings = spooling(high_water=1000)
    queue.add(b"a" * 1500)  # past the bound: spooled
    queue.add(b"b" * 10)  # memory has room, but it goes after the spool
    assert kinds(queue) == ["spool"] and settings.budget.used == 1510
    assert take_all(queue) == b"a" * 1500 + b"b" * 10


def test_the_spool_closes_once_none_of_it_waits_and_a_new_one_starts_at_zero():
    queue, settings = spooling(high_water=100)
    files = settings.files
    assert files is not None
    queue.add(b"a" * 500)
    assert files.open == 1
    assert take_all(queue) == b"a" * 500
    assert files.open == 0 and settings.budget.used == 0
    queue.add(b"b" * 300)
    assert files.open == 1
    item = queue.items[0]
    assert type(item) is FileRange and item.offset == 0
    assert take_all(queue) == b"b" * 300


def test_the_spool_file_never_holds_more_than_the_responses_share():
    queue, settings = spooling(high_water=100, per_response=1000)
    queue.add(b"a" * 800)
    queue.add(b"b" * 300)  # 1100 would pass the share: in memory
    assert kinds(queue) == ["spool", "memory"]
    assert queue.take(500) == b"a" * 500  # sent, but still in the file
    queue.add(b"c" * 300)
    assert kinds(queue) == ["spool", "memory", "memory"] and queue.in_memory == 600
    assert settings.budget.used == 800  # the file on disk, sent bytes included
    assert take_all(queue) == b"a" * 300 + b"b" * 300 + b"c" * 300
    assert settings.budget.used == 0  # the file closed once none of it waited


def test_the_budget_bounds_the_disk_across_responses():
    # Bytes sent stay in a spool file until none of it waits: the budget
    # counts them until then, so two responses never hold more on disk
    # than --max-spool-bytes (the review's case: 199,999 bytes for 100,000).
    settings = SpoolSettings(None, 100_000, Budget(100_000), FileCount(10))
    first, second = OutputQueue(0, settings), OutputQueue(0, settings)
    first.add(b"a" * 100_000)
    assert first.take(99_999) == b"a" * 99_999
    second.add(b"b" * 99_999)
    assert kinds(second) == ["memory"] and settings.budget.used == 100_000
    assert first.take(1) == b"a"
    second.add(b"c" * 10)
    assert kinds(second) == ["memory", "spool"] and settings.budget.used == 10


def test_once_its_spool_was_sent_a_response_spools_its_whole_share_again():
    queue, settings = spooling(high_water=100, per_response=1000)
    queue.add(b"a" * 1000)
    assert take_all(queue) == b"a" * 1000  # the file closed, its share is whole again
    queue.add(b"b" * 1000)
    assert kinds(queue) == ["spool"] and settings.budget.used == 1000
    assert take_all(queue) == b"b" * 1000


@pytest.mark.parametrize("per_response, budget, files", [
    (0, 1 << 20, 10),  # no share of the spool for a response
    (1 << 20, 10, 10),  # the budget across connections is spent
    (1 << 20, 1 << 20, 0),  # no descriptor to spare
])
def test_without_room_in_the_spool_the_bytes_stay_in_memory(per_response, budget, files):
    share = Share(100)
    queue, settings = spooling(high_water=100, per_response=per_response, budget=budget,
                               files=files, share=share)
    queue.add(b"q" * 500)
    assert kinds(queue) == ["memory"] and queue.in_memory == 500 and share.over
    assert settings.budget.used == 0  # nothing kept of what was tried
    assert settings.files is not None and settings.files.open == 0


def test_without_spool_settings_the_bytes_stay_in_memory():
    queue = OutputQueue(100, None)
    queue.add(b"q" * 500)
    assert kinds(queue) == ["memory"] and queue.in_memory == 500


def test_a_spool_that_cannot_be_opened_is_logged_and_costs_nothing(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    queue, settings = spooling(high_water=100)
    queue.add(b"q" * 500)
    assert kinds(queue) == ["memory"]
    assert settings.budget.used == 0 and settings.files is not None and settings.files.open == 0
    assert "could not be spooled" in caplog.text


class _FailingFile(io.FileIO):
    """A spool file whose disk fills half-way through the ``fail_at``-th write."""

    def __init__(self, path: str, fail_at: int, short: bool = False) -> None:
        super().__init__(path, "w+b")
        self.writes = 0
        self.fail_at = fail_at
        self.short = short

    def write(self, data) -> int:  # type: ignore[override]
        self.writes += 1
        view = memoryview(data)
        if self.short and len(view) > 1:
            return super().write(view[:len(view) // 2])  # a short write, then the rest
        if self.writes == self.fail_at:
            super().write(view[:len(view) // 2])
            raise OSError(28, "No space left on device")
        return super().write(view)


def test_an_interrupted_spool_write_leaves_nothing_half_written(monkeypatch, tmp_path):
    spools: list[_FailingFile] = []

    def failing(*args, **kwargs):
        spools.append(_FailingFile(str(tmp_path / "spool"), fail_at=2))
        return spools[-1]

    monkeypatch.setattr(tempfile, "TemporaryFile", failing)
    queue, settings = spooling(high_water=10)
    queue.add(b"a" * 100)  # spooled
    queue.add(b"b" * 100)  # the disk fills half-way: kept in memory instead
    assert kinds(queue) == ["spool", "memory"] and settings.budget.used == 100
    assert os.path.getsize(tmp_path / "spool") == 100  # the half write was cut back off
    queue.add(b"c" * 100)  # the next spill lands where the queued bytes end
    assert kinds(queue) == ["spool", "memory", "spool"]
    assert take_all(queue) == b"a" * 100 + b"b" * 100 + b"c" * 100
    assert settings.budget.used == 0 and len(spools) == 1


def test_a_short_spool_write_is_written_whole(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "TemporaryFile",
                        lambda *args, **kwargs: _FailingFile(str(tmp_path / "s"), 0, short=True))
    queue, _ = spooling(high_water=10)
    queue.add(b"0123456789" * 10)
    assert take_all(queue, 33) == b"0123456789" * 10


# -- file ranges ---------------------------------------------------------------

def test_a_file_range_is_read_on_a_descriptor_of_its_own(file_fd):
    queue = OutputQueue(100, None)
    queue.add_file(file_fd, 2, 5)
    item = queue.items[0]
    assert type(item) is FileRange and item.fd != file_fd and not item.spooled
    own = item.fd
    assert take_all(queue, 2) == b"23456"
    assert not is_open(own)  # closed once taken


def test_a_file_shorter_than_announced_fails(file_fd):
    queue = OutputQueue(100, None)
    queue.add_file(file_fd, 8, 5)  # only 2 bytes there
    assert queue.take(10) == b"89"
    with pytest.raises(FileEnded):
        queue.take(10)


def test_consume_advances_a_file_range_and_gives_spooled_bytes_back():
    queue, settings = spooling(high_water=10)
    queue.add(b"s" * 100)
    item = queue.items[0]
    assert type(item) is FileRange
    queue.consume(40)  # sendfile took 40: still on disk
    assert (item.offset, item.count, settings.budget.used) == (40, 60, 100)
    queue.consume(60)
    assert not queue and settings.budget.used == 0
    assert settings.files is not None and settings.files.open == 0


# -- ending ----------------------------------------------------------------------

def test_clear_closes_every_descriptor_and_the_spool_and_gives_everything_back(file_fd):
    share = Share(1000)
    queue, settings = spooling(high_water=100, share=share)
    queue.add(b"a" * 100)
    queue.add(b"b" * 5000)
    queue.add_file(file_fd, 0, 10)
    descriptors = [item.fd for item in queue.items if type(item) is FileRange]
    assert share.used == 100 and settings.budget.used == 5000
    assert settings.files is not None and settings.files.open == 1
    queue.clear()
    queue.clear()
    assert (share.used, settings.budget.used, settings.files.open, bool(queue)) == (0, 0, 0,
                                                                                     False)
    assert queue.in_memory == 0
    assert not any(is_open(fd) for fd in descriptors)
    assert is_open(file_fd)  # the caller's own stays open


def test_no_descriptor_for_the_spooled_range_keeps_the_bytes_in_memory(monkeypatch):
    # The review's case: os.dup failing (EMFILE) after the write left the
    # bytes counted in the budget and the file open, with nothing queued.
    queue, settings = spooling(high_water=10)
    queue.add(b"a" * 100)  # the file is open now, one range queued

    def no_descriptor(fd):
        raise OSError(24, "Too many open files")

    take_all(queue)
    monkeypatch.setattr(os, "dup", no_descriptor)
    queue.add(b"b" * 100)
    assert kinds(queue) == ["memory"] and settings.budget.used == 0
    assert settings.files is not None and settings.files.open == 0
    assert take_all(queue) == b"b" * 100
