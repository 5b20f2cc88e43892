"""Slow clients: hundreds of connections trickling their request heads or
bodies must not stop a normal client from being served, and a trickler that
reaches a limit gets the status RFC 9110 gives for it.

"Promptly" is an ordering, never a duration: the normal request must be
answered while every trickler is still trickling (none has run out of bytes
to send). Every trickle is bounded in bytes and rounds, so a failing run
ends too. test_concurrency.py covers one trickler against one client and
test_server.py one stalled head; these scale that to 500 and add bodies.
"""

from __future__ import annotations

import http.client
import selectors
import socket
import threading

import pytest

from tests.conftest import recv_until_closed
from tests.functional.apps import echo_body_app, hello_app
from tests.functional.http import read_response

HELLO = b"Hello, World!"
MANY = 500


def hello_or_echo(environ, start_response):
    """GET: Hello, World!; anything else: the request body back (read whole)."""
    if environ["REQUEST_METHOD"] == "GET":
        return hello_app(environ, start_response)
    return echo_body_app(environ, start_response)


@pytest.fixture
def enough_descriptors():
    """Room for MANY client sockets and the server's side of each, in one process."""
    resource = pytest.importorskip("resource", reason="needs the resource module (POSIX)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * MANY
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"the file limit ({hard}) is too low for {MANY} connections")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    # The limit stays raised: lowering it under open descriptors would fail
    # later opens of others in this process, and a higher limit harms no test.


class Tricklers:
    """``count`` connections that each send ``prefix`` at once, then ``trickle``
    ``step`` bytes per round, one round every ``interval`` seconds, all from
    one thread. A connection stops trickling once the server answers or
    closes it; the thread stops when told, when every connection was
    answered, or when the trickle runs out of bytes (``exhausted``)."""

    def __init__(self, server, count: int, prefix: bytes, trickle: bytes,
                 step: int = 1, interval: float = 0.05) -> None:
        self.server = server
        self.prefix = prefix
        self.trickle = trickle
        self.step = step
        self.interval = interval
        self.count = count
        self.socks: list[socket.socket] = []
        self.answered: set[int] = set()  # indexes the server answered or closed
        self.rounds = 0
        self.trickling = threading.Event()  # set after the first two rounds
        self.exhausted = threading.Event()  # the trickle ran out of bytes
        self.ended = threading.Event()  # the thread has left its loop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tricklers")

    def __enter__(self) -> Tricklers:
        try:
            for _ in range(self.count):
                sock = socket.create_connection(self.server.address, timeout=10)
                sock.sendall(self.prefix)
                sock.setblocking(False)
                self.socks.append(sock)
        except BaseException:
            self.close()
            raise
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
        self.close()

    @property
    def active(self) -> bool:
        """Still trickling: neither out of bytes nor stopped."""
        return not self.ended.is_set()

    def _run(self) -> None:
        # A selector rather than select.poll: this runs on every system.
        poller = selectors.DefaultSelector()
        for n, sock in enumerate(self.socks):
            poller.register(sock, selectors.EVENT_READ, n)
        try:
            for offset in range(0, len(self.trickle), self.step):
                for key, _ in poller.select(0):
                    self.answered.add(key.data)
                    poller.unregister(key.fileobj)
                if len(self.answered) == len(self.socks):
                    return
                piece = self.trickle[offset:offset + self.step]
                for n, sock in enumerate(self.socks):
                    if n not in self.answered:
                        try:
                            sock.send(piece)
                        except OSError:  # reset, or a full buffer: the server is not reading
                            self.answered.add(n)
                self.rounds += 1
                if self.rounds == 2:
                    self.trickling.set()
                if self._stop.wait(self.interval):
                    return
            self.exhausted.set()
        finally:
            poller.close()
            self.trickling.set()  # never leave a waiter hanging
            self.ended.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive()

    def untouched(self) -> bool:
        """True when the server neither sent a byte to nor closed any of them."""
        for sock in self.socks:
            try:
                sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue  # nothing yet, and still open
            except OSError:
                return False  # reset
            return False  # a byte of an answer, or b"" for a close
        return True

    def finish(self, rest: bytes) -> list[int]:
        """Send what is left of every request; the status each one gets."""
        statuses = []
        for sock in self.socks:
            sock.settimeout(10)
            sock.sendall(self.trickle[self.rounds * self.step:] + rest)
        for sock in self.socks:
            statuses.append(read_response(sock).status)
        return statuses

    def responses(self) -> list[bytes]:
        """What each connection received until the server closed it."""
        out = []
        for sock in self.socks:
            sock.settimeout(5)
            out.append(recv_until_closed(sock))
        return out

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def get_in_background(server) -> tuple[threading.Thread, dict]:
    """A normal GET in a thread of its own; its outcome lands in the dict."""
    outcome: dict = {}

    def run() -> None:
        conn = http.client.HTTPConnection(*server.address, timeout=30)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            outcome["response"] = (response.status, response.read())
        except (OSError, http.client.HTTPException) as error:
            outcome["response"] = repr(error)
        finally:
            conn.close()

    thread = threading.Thread(target=run, name="normal-client")
    thread.start()
    return thread, outcome


def serve_normal_client_among(tricklers: Tricklers) -> tuple[object, bool]:
    """Once the tricklers are trickling, a normal GET. Returns its outcome and
    whether every trickler was still trickling when it finished."""
    assert tricklers.trickling.wait(30)
    client, outcome = get_in_background(tricklers.server)
    # Wait for whichever ends first: the normal request, or the trickle.
    while client.is_alive() and tricklers.active:
        client.join(0.05)
    in_time = tricklers.active and not client.is_alive()
    if client.is_alive():
        tricklers.stop()
        tricklers.close()  # frees whatever they held, so the client ends now
        client.join(30)
    return outcome.get("response"), in_time


def test_500_trickling_heads_do_not_stop_a_normal_client(live_server, enough_descriptors):
    # Two workers: tricklers holding workers would show at once.
    server = live_server(hello_app, threads=2, header_timeout=60)
    with Tricklers(server, MANY, b"GET / HTTP/1.1\r\nHost: x\r\nX-Trickle: ",
                   b"a" * 80) as tricklers:
        response, in_time = serve_normal_client_among(tricklers)
        assert response == (200, HELLO)
        assert in_time, "answered only after the tricklers ran out of bytes"
        assert tricklers.untouched()  # none was answered or shed to make room
        tricklers.stop()
        # And every trickled request is served once its head is complete.
        assert tricklers.finish(b"\r\n\r\n") == [200] * MANY


_TRICKLE = b"b" * 80
# Over 64 KiB: a body taken in over several reads, as large uploads are.
_LARGE = 65536 + 1 - len(_TRICKLE) - 1
BODIES = {  # framing: (head and what is sent at once, what ends the body)
    "small-length": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                     % (len(_TRICKLE) + 1), b"b"),
    "chunked": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"%x\r\n" % (len(_TRICKLE) + 1), b"b\r\n0\r\n\r\n"),
    "large-length": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                     % (_LARGE + len(_TRICKLE) + 1) + b"b" * _LARGE, b"b"),
}


@pytest.mark.parametrize(
    "framing",
    [
        "small-length",
        "chunked",
        "large-length",
    ],
)
def test_500_trickling_bodies_do_not_stop_a_normal_client(
    live_server, enough_descriptors, framing
):
    server = live_server(hello_or_echo, threads=2)
    prefix, rest = BODIES[framing]
    with Tricklers(server, MANY, prefix, _TRICKLE) as tricklers:
        response, in_time = serve_normal_client_among(tricklers)
        assert response == (200, HELLO)
        assert in_time, "answered only after the tricklers ran out of bytes"
        tricklers.stop()
        assert tricklers.finish(rest) == [200] * MANY


def test_trickled_heads_past_the_header_timeout_get_408(live_server):
    """The head deadline runs from its first byte: a client that keeps
    sending, a byte at a time, is still cut off."""
    server = live_server(hello_app, threads=2, header_timeout=1.0)
    with Tricklers(server, 50, b"GET / HTTP/1.1\r\nHost: x\r\nX-Trickle: ",
                   b"a" * 400) as tricklers:
        assert tricklers.ended.wait(60)
        assert not tricklers.exhausted.is_set()  # all answered while still trickling
        assert len(tricklers.answered) == 50
        responses = tricklers.responses()
    for data in responses:
        assert data.startswith(b"HTTP/1.1 408 "), data[:100]
        assert b"\r\nConnection: close\r\n" in data
    assert get_status(server) == 200


def get_status(server) -> int:
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("settings", "prefix", "status"),
    [
        ({"max_request_line": 1024}, b"GET /", 414),
        ({"max_header_bytes": 2048}, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", 431),
    ],
    ids=["request-line-414", "header-section-431"],
)
def test_trickled_head_over_a_size_limit_gets_its_status(live_server, settings, prefix, status):
    server = live_server(hello_app, threads=2, header_timeout=60, **settings)
    with Tricklers(server, 20, prefix, b"a" * 8000, step=100, interval=0.02) as tricklers:
        assert tricklers.ended.wait(60)
        assert not tricklers.exhausted.is_set()  # refused once past the limit, not at the end
        responses = tricklers.responses()
    for data in responses:
        assert data.startswith(b"HTTP/1.1 %d " % status), data[:100]
    assert get_status(server) == 200


STALLS = {
    "content-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 40,
    "chunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"64\r\n" + b"a" * 40,
    "expect-continue": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
    b"Expect: 100-continue\r\n\r\n",
}


@pytest.mark.parametrize("kind", list(STALLS))
def test_body_stalled_past_the_body_timeout_gets_408(live_server, kind):
    server = live_server(hello_or_echo, threads=1, body_timeout=0.5)
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(STALLS[kind])  # then silence, with the socket left open
        response = read_response(sock)
        assert response.status == 408
        assert recv_until_closed(sock) == b""  # and the connection ends
        # The single worker is free again while the stalled socket is still open.
        assert get_status(server) == 200


def test_408_for_a_stalled_body_announces_the_close(live_server):
    server = live_server(hello_or_echo, threads=1, body_timeout=0.5)
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(STALLS["content-length"])
        response = read_response(sock)
    assert response.status == 408
    assert response.header("connection") == "close"


def test_slow_but_steady_bodies_within_the_timeout_complete(live_server):
    """A slow client within the limits is served whole, not cut off: bodies
    trickled with pauses shorter than body_timeout arrive intact."""
    server = live_server(hello_or_echo, threads=4, body_timeout=5)
    payload = b"0123456789" * 10
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(payload)
    with Tricklers(server, 4, head, payload[:-10], step=10, interval=0.05) as tricklers:
        assert tricklers.ended.wait(30)
        assert tricklers.exhausted.is_set() and not tricklers.answered
        statuses = tricklers.finish(payload[-10:])
    assert statuses == [200] * 4
    assert get_status(server) == 200
