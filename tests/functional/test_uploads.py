"""Uploads through microapp (POST/PUT /files/<name>) on the real server, under
faults and concurrency: what is left on disk, and in the server.

The server receives a body whole (in memory, or beyond a threshold in an
unlinked spool file) before the application runs; the application then
writes a temporary file beside its target and renames it into place. So an
upload cut off at any stage never reaches the application, leaves neither
file nor temporary file, and its spool file is closed; concurrent uploads to
one name leave exactly one whole file, never a mixture. test_microapp_e2e.py
covers one disconnect mid-upload and six concurrent PUTs; these go through
every stage of both framings and 20 concurrent uploads on one worker thread.
"""

from __future__ import annotations

import http.client
import os
import socket
import struct
import threading
import time

import pytest

from microapp import create_app
from microapp.files import TEMPORARY_PREFIX
from tests.functional.http import read_response

BODY = bytes(range(256)) * 1200  # 307,200 bytes: several 64 KiB reads
CHUNK = 100_000


def wait_until(condition, seconds: float = 10.0):
    """Poll ``condition`` until it holds or ``seconds`` pass; its last value."""
    deadline = time.monotonic() + seconds
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return result


class Finished:
    """Wraps an app and counts the requests it has completely finished
    (returned and closed, or raised), so a test knows when to look at the disk."""

    def __init__(self, app) -> None:
        self.app = app
        self.count = 0
        self._lock = threading.Lock()

    def _done(self) -> None:
        with self._lock:
            self.count += 1

    def __call__(self, environ, start_response):
        try:
            result = self.app(environ, start_response)
        except BaseException:
            self._done()
            raise
        return _ClosingIterable(result, self._done)


class _ClosingIterable:
    def __init__(self, result, done) -> None:
        self._result = result
        self._done = done

    def __iter__(self):
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


@pytest.fixture
def uploads(live_server, tmp_path):
    """Factory: (server, directory, finished) for microapp with files in
    tmp_path/files; bodies over 64 KiB spool to tmp_path/spool."""

    def start(**settings):
        directory = tmp_path / "files"
        directory.mkdir()
        (tmp_path / "spool").mkdir()
        settings.setdefault("spool_dir", str(tmp_path / "spool"))
        settings.setdefault("body_memory_bytes", 64 * 1024)
        finished = Finished(create_app(directory=str(directory)))
        return live_server(finished, **settings), directory, finished

    return start


def temporaries(directory) -> list[str]:
    return [name for name in os.listdir(directory) if name.startswith(TEMPORARY_PREFIX)]


def spooled(spool) -> int:
    """Spool files this process (the server runs in it) holds open in ``spool``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(str(spool))
    return count


def request(server, method, path, body=None, headers=None, timeout=10):
    connection = http.client.HTTPConnection(*server.address, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def cut(sock: socket.socket, how: str) -> None:
    if how == "rst":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def length_upload(name: str) -> bytes:
    head = f"POST /files/{name} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(BODY)}\r\n\r\n"
    return head.encode() + BODY


def chunked_upload(name: str) -> bytes:
    head = f"POST /files/{name} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
    pieces = [BODY[i:i + CHUNK] for i in range(0, len(BODY), CHUNK)]
    return head.encode() + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def _length_stages() -> list[tuple[str, int]]:
    head = len(length_upload("up")) - len(BODY)
    return [
        ("after-head", head),
        ("first-body-byte", head + 1),
        ("at-64KiB", head + 65536),
        ("mid-body", head + len(BODY) // 2),
        ("before-last-byte", head + len(BODY) - 1),
    ]


def _chunked_stages() -> list[tuple[str, int]]:
    whole = chunked_upload("up")
    head = whole.index(b"\r\n\r\n") + 4
    first_data = whole.index(b"\r\n", head) + 2
    second_size = first_data + CHUNK + 2
    last_chunk = whole.rindex(b"0\r\n\r\n")
    return [
        ("after-head", head),
        ("mid-size-line", head + 2),
        ("after-size-line", first_data),
        ("mid-chunk", first_data + CHUNK // 2),
        ("between-chunks", second_size),
        ("before-last-chunk", last_chunk),
        ("before-trailer-end", last_chunk + 3),  # "0\r\n" sent, the final CRLF not
        ("before-last-byte", len(whole) - 1),
    ]


CUTS = [("length", stage, at) for stage, at in _length_stages()] + [
    ("chunked", stage, at) for stage, at in _chunked_stages()
]


def assert_app_never_ran_and_server_serves(server, directory, finished, spool) -> None:
    """After a cut-off upload: nothing reached the app or the disk, its spool
    file is closed, and the one worker still serves (the name uploads whole)."""
    assert wait_until(lambda: spooled(spool) == 0)
    assert request(server, "GET", "/files/up") == (404, b"Not Found")
    # That GET only (counted once its response is closed, just after it went
    # out): the cut-off upload never reached the app.
    assert wait_until(lambda: finished.count == 1) and finished.count == 1
    assert os.listdir(directory) == []
    assert request(server, "POST", "/files/up", body=BODY)[0] == 201
    assert (directory / "up").read_bytes() == BODY
    assert os.listdir(directory) == ["up"]


@pytest.mark.parametrize("how", ["fin", "rst"])
@pytest.mark.parametrize(("framing", "stage", "at"), CUTS,
                         ids=[f"{framing}-{stage}" for framing, stage, _ in CUTS])
def test_upload_cut_off_leaves_no_file_and_no_temporary(uploads, tmp_path, framing, stage, at,
                                                       how):
    server, directory, finished = uploads(threads=1)
    whole = length_upload("up") if framing == "length" else chunked_upload("up")
    assert 0 < at < len(whole)
    sock = socket.create_connection(server.address, timeout=10)
    try:
        sock.sendall(whole[:at])
        if at - whole.index(b"\r\n\r\n") > 64 * 1024 + 4096:
            # Past the memory threshold: the server holds a spool file.
            assert wait_until(lambda: spooled(tmp_path / "spool") == 1)
        else:
            time.sleep(0.02)  # let the server take in what was sent
    finally:
        cut(sock, how)
    assert_app_never_ran_and_server_serves(server, directory, finished, tmp_path / "spool")


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_upload_cut_off_after_100_continue_leaves_nothing(uploads, tmp_path, how):
    server, directory, finished = uploads(threads=1)
    sock = socket.create_connection(server.address, timeout=10)
    try:
        sock.sendall(b"POST /files/up HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(BODY))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(BODY[:100_000])
        assert wait_until(lambda: spooled(tmp_path / "spool") == 1)
    finally:
        cut(sock, how)
    assert_app_never_ran_and_server_serves(server, directory, finished, tmp_path / "spool")


def test_cut_off_upload_replacing_a_file_leaves_the_old_file_whole(uploads, tmp_path):
    server, directory, finished = uploads(threads=1)
    old = b"the old content" * 1000
    assert request(server, "PUT", "/files/kept", body=old)[0] == 201
    sock = socket.create_connection(server.address, timeout=10)
    try:
        sock.sendall(length_upload("kept")[: -len(BODY) // 2])
        assert wait_until(lambda: spooled(tmp_path / "spool") == 1)
    finally:
        cut(sock, "rst")
    assert wait_until(lambda: spooled(tmp_path / "spool") == 0)
    assert wait_until(lambda: finished.count == 1) and finished.count == 1  # the first PUT
    assert os.listdir(directory) == ["kept"]
    assert (directory / "kept").read_bytes() == old
    assert request(server, "GET", "/files/kept") == (200, old)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_stalled_upload_gets_408_and_leaves_nothing(uploads, tmp_path, framing):
    server, directory, finished = uploads(threads=1, body_timeout=0.5)
    whole = length_upload("up") if framing == "length" else chunked_upload("up")
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(whole[: len(whole) // 2])  # then silence, the socket left open
        response = read_response(sock)
        assert response.status == 408 and response.header("connection") == "close"
        assert spooled(tmp_path / "spool") == 0
        assert finished.count == 0  # the app never saw a part of a body
        assert os.listdir(directory) == []
        assert request(server, "GET", "/") == (200, b"")  # the worker is free


def _upload_in_two_halves(server, name: str, body: bytes, chunked: bool,
                          go: threading.Event, results: dict, key) -> None:
    """Send the head and half the body, wait for ``go``, send the rest."""
    if chunked:
        head = f"POST /files/{name} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        half = len(body) // 2
        first = b"%x\r\n%s\r\n" % (half, body[:half])
        rest = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body) - half, body[half:])
    else:
        head = f"POST /files/{name} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n\r\n"
        first, rest = body[: len(body) // 2], body[len(body) // 2:]
    try:
        with socket.create_connection(server.address, timeout=20) as sock:
            sock.sendall(head.encode() + first)
            if not go.wait(20):
                results[key] = "never released"
                return
            sock.sendall(rest)
            results[key] = read_response(sock).status
    except OSError as error:
        results[key] = repr(error)


def test_twenty_concurrent_uploads_to_one_name_leave_exactly_one_whole_file(uploads, tmp_path):
    # One worker: the bodies are received by the poller, not by threads.
    server, directory, finished = uploads(threads=1)
    bodies = [bytes([65 + n]) * (150_000 + 1000 * n) for n in range(20)]
    go = threading.Event()
    results: dict = {}
    writers = [
        threading.Thread(target=_upload_in_two_halves,
                         args=(server, "shared", body, n % 2 == 1, go, results, n))
        for n, body in enumerate(bodies)
    ]
    for thread in writers:
        thread.start()
    try:
        # All twenty are half-way, each in a spool file of its own.
        all_streaming = wait_until(lambda: spooled(tmp_path / "spool") == 20, seconds=15)
    finally:
        go.set()
    reads: list = []

    def reader() -> None:
        # Meanwhile a reader sees no file, or one whole upload; never a part.
        for _ in range(200):
            if not any(thread.is_alive() for thread in writers):
                break
            reads.append(request(server, "GET", "/files/shared"))

    reading = threading.Thread(target=reader)
    reading.start()
    for thread in writers:
        thread.join(30)
    reading.join(30)
    assert all_streaming, spooled(tmp_path / "spool")
    assert not any(thread.is_alive() for thread in writers + [reading])
    assert results == {n: 201 for n in range(20)}
    assert wait_until(lambda: finished.count >= 20)
    assert os.listdir(directory) == ["shared"]
    assert (directory / "shared").read_bytes() in bodies
    for status, body in reads:
        assert status == 404 and body == b"Not Found" or status == 200 and body in bodies


def test_twenty_concurrent_create_only_puts_create_exactly_one(uploads):
    server, directory, _ = uploads(threads=20)
    bodies = [bytes([97 + n]) * (100_000 + n) for n in range(20)]
    start = threading.Barrier(20, timeout=15)
    statuses: dict[int, int] = {}

    def put(n: int) -> None:
        try:
            start.wait()
            statuses[n] = request(server, "PUT", "/files/once", body=bodies[n],
                                  headers={"If-None-Match": "*"})[0]
        except (OSError, threading.BrokenBarrierError) as error:
            statuses[n] = repr(error)  # type: ignore[assignment]

    threads = [threading.Thread(target=put, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    created = [n for n, status in statuses.items() if status == 201]
    assert len(created) == 1, statuses
    assert sorted(statuses.values()) == [201] + [412] * 19
    assert os.listdir(directory) == ["once"]
    assert (directory / "once").read_bytes() == bodies[created[0]]


def test_concurrent_uploads_to_one_name_half_of_them_cut_off(uploads, tmp_path):
    """Ten whole uploads and ten cut off mid-body, all at once: one whole file
    from the ten, and nothing else on disk or in the spool."""
    server, directory, finished = uploads(threads=1, body_memory_bytes=32 * 1024)
    bodies = [bytes([65 + n]) * (120_000 + 1000 * n) for n in range(20)]
    go = threading.Event()
    results: dict = {}

    def cut_off(n: int) -> None:
        body = bodies[n]
        head = f"POST /files/shared HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n\r\n"
        try:
            sock = socket.create_connection(server.address, timeout=20)
            sock.sendall(head.encode() + body[: len(body) // 2])
            go.wait(20)
            sock.sendall(body[len(body) // 2: -1])  # all but the last byte
            cut(sock, "rst" if n % 4 == 0 else "fin")
            results[n] = "cut"
        except OSError as error:
            results[n] = repr(error)

    threads = []
    for n in range(20):
        if n % 2:
            target, args = cut_off, (n,)
        else:
            target, args = _upload_in_two_halves, (server, "shared", bodies[n], n % 4 == 2,
                                                  go, results, n)
        threads.append(threading.Thread(target=target, args=args))
    for thread in threads:
        thread.start()
    try:
        all_streaming = wait_until(lambda: spooled(tmp_path / "spool") == 20, seconds=15)
    finally:
        go.set()
    for thread in threads:
        thread.join(30)
    assert all_streaming, spooled(tmp_path / "spool")
    assert results == {n: ("cut" if n % 2 else 201) for n in range(20)}
    assert wait_until(lambda: spooled(tmp_path / "spool") == 0)
    assert wait_until(lambda: finished.count == 10), finished.count  # only the whole ones
    assert os.listdir(directory) == ["shared"]
    assert (directory / "shared").read_bytes() in bodies[0::2]
