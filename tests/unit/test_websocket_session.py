"""The blocking WebSocket session over a socketpair, driven with raw frames.

The far end of each pair plays the client: it writes masked frames built
with encode_frame and reads the server's frames with a client-side
FrameParser or as raw bytes. The last tests run the independent
``websockets`` client against a loopback server built from this package.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from wsgiserver.websocket import (
    NEED_DATA,
    BinaryMessage,
    CloseReceived,
    ConnectionClosed,
    FrameParser,
    Opcode,
    WebSocket,
    check_handshake,
    encode_close,
    encode_frame,
    response_headers,
)

MASK = bytes.fromhex("37fa213d")
TIMEOUT = 5.0


class Peer:
    """The client end of a socketpair: sends masked frames, reads the server's."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = FrameParser(1 << 24, expect_masked=False)

    def send(self, opcode: int, payload: bytes = b"", fin: bool = True) -> None:
        self.sock.sendall(encode_frame(opcode, payload, fin, mask=MASK))

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        self.sock.sendall(encode_close(code, reason, mask=MASK))

    def event(self):
        """The server's next event (bounded by the socket's timeout)."""
        while (event := self.parser.next_event()) is NEED_DATA:
            data = self.sock.recv(65536)
            assert data, "server closed the connection without a frame"
            self.parser.feed(data)
        return event

    def exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            assert chunk, "server closed the connection early"
            data += chunk
        return data


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.settimeout(TIMEOUT)
    client.settimeout(TIMEOUT)
    yield server, client
    server.close()
    client.close()


def make_session(sock: socket.socket, **options) -> WebSocket:
    return WebSocket(sock.recv, sock.sendall, **options)


def run_thread(target, *args) -> tuple[threading.Thread, dict]:
    """Start ``target`` on a thread; its result or exception lands in the dict."""
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = target(*args)
        except BaseException as error:  # reported by the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def join(thread: threading.Thread, outcome: dict):
    thread.join(TIMEOUT * 2)
    assert not thread.is_alive(), "thread did not finish"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def wait_until(condition, limit: float = TIMEOUT) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.005)


# -- messages ----------------------------------------------------------------


def test_receives_text_and_binary_messages(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    peer.send(Opcode.TEXT, "héllo".encode())
    peer.send(Opcode.BINARY, b"\x00\xff")
    assert ws.receive() == "héllo"
    assert ws.receive() == b"\x00\xff"


def test_sends_unmasked_text_and_binary_frames(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    ws.send("Hello")
    ws.send(b"\x01\x02")
    ws.send(bytearray(b"ab"))
    assert peer.exactly(7 + 4 + 4) == b"\x81\x05Hello" + b"\x82\x02\x01\x02" + b"\x82\x02ab"


def test_send_refuses_other_types(pair):
    ws = make_session(pair[0])
    with pytest.raises(TypeError):
        ws.send(42)  # type: ignore[arg-type]


def test_pings_inside_a_fragmented_message_are_answered(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    peer.send(Opcode.TEXT, b"Hel", fin=False)
    peer.send(Opcode.PING, b"one")
    peer.send(Opcode.CONTINUATION, b"lo", fin=False)
    peer.send(Opcode.PING, b"")
    peer.send(Opcode.CONTINUATION, ", wörld".encode())
    assert ws.receive() == "Hello, wörld"
    assert peer.exactly(5 + 2) == b"\x8a\x03one" + b"\x8a\x00"


def test_utf8_split_across_fragments_arrives_whole(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    euro = "€".encode()
    peer.send(Opcode.TEXT, euro[:2], fin=False)
    peer.send(Opcode.CONTINUATION, euro[2:])
    assert ws.receive() == "€"


def test_pongs_are_read_and_not_returned(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    ws.ping(b"are you there")
    assert peer.exactly(15) == b"\x89\x0dare you there"
    peer.send(Opcode.PONG, b"are you there")
    peer.send(Opcode.TEXT, b"yes")
    assert ws.receive() == "yes"


def test_ping_over_125_bytes_is_refused(pair):
    with pytest.raises(ValueError):
        make_session(pair[0]).ping(b"x" * 126)


def test_large_message_round_trips(pair):
    server, client = pair
    ws, peer = make_session(server, max_message_bytes=2 << 20), Peer(client)
    payload = bytes(range(256)) * 4096  # 1 MiB
    sender, sent = run_thread(peer.send, Opcode.BINARY, payload)
    assert ws.receive() == payload
    join(sender, sent)
    reader, read = run_thread(peer.event)
    ws.send(payload)
    assert join(reader, read) == BinaryMessage(payload)


def test_iteration_yields_messages_until_close(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    for text in ("a", "b", "c"):
        peer.send(Opcode.TEXT, text.encode())
    peer.send_close(1000)
    assert list(ws) == ["a", "b", "c"]
    assert ws.closed and ws.close_code == 1000


def test_concurrent_sends_are_not_interleaved(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    senders, count = 4, 25

    def send_many(tag: int) -> None:
        for index in range(count):
            ws.send(bytes([tag]) * 50_000 + index.to_bytes(2, "big"))

    def read_all() -> list:
        return [peer.event() for _ in range(senders * count)]

    reader, read = run_thread(read_all)
    threads = [run_thread(send_many, tag) for tag in range(senders)]
    for thread, outcome in threads:
        join(thread, outcome)
    events = join(reader, read)
    for tag in range(senders):
        mine = [e.data for e in events if e.data[0] == tag]
        assert [int.from_bytes(data[-2:], "big") for data in mine] == list(range(count))
        assert all(data[:-2] == bytes([tag]) * 50_000 for data in mine)


# -- the peer closes ---------------------------------------------------------


def test_peer_close_is_echoed_and_receive_returns_none(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    peer.send_close(1001, "going away")
    assert ws.receive() is None
    assert ws.closed
    assert (ws.close_code, ws.close_reason) == (1001, "going away")
    assert peer.exactly(4) == b"\x88\x02\x03\xe9"
    assert ws.receive() is None


def test_peer_close_without_code_is_1005_and_echoed_empty(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    peer.send_close(None)
    assert ws.receive() is None
    assert ws.close_code == 1005
    assert peer.exactly(2) == b"\x88\x00"


def test_send_and_ping_after_close_raise_connection_closed(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    peer.send_close(1000)
    assert ws.receive() is None
    with pytest.raises(ConnectionClosed) as caught:
        ws.send("too late")
    assert caught.value.code == 1000
    with pytest.raises(ConnectionClosed):
        ws.ping()


def test_eof_without_close_frame_is_1006(pair):
    server, client = pair
    ws = make_session(server)
    client.shutdown(socket.SHUT_WR)
    assert ws.receive() is None
    assert ws.closed and ws.close_code == 1006


def test_eof_in_the_middle_of_a_frame_is_1006(pair):
    server, client = pair
    ws = make_session(server)
    client.sendall(encode_frame(Opcode.TEXT, b"truncated", mask=MASK)[:8])
    client.shutdown(socket.SHUT_WR)
    assert ws.receive() is None
    assert ws.close_code == 1006


def test_transport_error_on_receive_is_1006():
    def broken_recv(size: int) -> bytes:
        raise ConnectionResetError("reset by peer")

    ws = WebSocket(broken_recv, lambda data: None)
    assert ws.receive() is None
    assert ws.close_code == 1006


def test_send_on_a_broken_transport_raises_connection_closed():
    def broken_send(data: bytes) -> None:
        raise BrokenPipeError("broken pipe")

    ws = WebSocket(lambda size: b"", broken_send)
    with pytest.raises(ConnectionClosed) as caught:
        ws.send("hello")
    assert isinstance(caught.value.__cause__, BrokenPipeError)
    assert ws.closed and ws.close_code == 1006
    with pytest.raises(ConnectionClosed):
        ws.send("again")


# -- protocol errors fail the connection -------------------------------------

FAILURES = {
    "unmasked frame": (encode_frame(Opcode.TEXT, b"hi"), 1002),
    "reserved opcode": (b"\x83\x80" + MASK, 1002),
    "invalid UTF-8": (encode_frame(Opcode.TEXT, b"\xff", mask=MASK), 1007),
    "bad close code": (encode_frame(Opcode.CLOSE, b"\x03\xed", mask=MASK), 1002),
    "message too big": (encode_frame(Opcode.BINARY, b"x" * 101, mask=MASK), 1009),
}


@pytest.mark.parametrize("data, code", FAILURES.values(), ids=FAILURES.keys())
def test_protocol_error_sends_its_close_code_and_closes(pair, data, code):
    server, client = pair
    ws, peer = make_session(server, max_message_bytes=100), Peer(client)
    client.sendall(data)
    assert ws.receive() is None
    assert ws.closed and ws.close_code == code
    event = peer.event()
    assert isinstance(event, CloseReceived) and event.code == code
    with pytest.raises(ConnectionClosed):
        ws.send("no more")


def test_message_over_the_limit_is_refused_before_its_payload(pair):
    server, client = pair
    ws, peer = make_session(server, max_message_bytes=1000), Peer(client)
    # Only the header of a 1 GiB frame is ever sent.
    client.sendall(bytes([0x82, 0x80 | 127]) + (1 << 30).to_bytes(8, "big") + MASK)
    assert ws.receive() is None
    assert ws.close_code == 1009
    assert peer.event().code == 1009


# -- timeouts ----------------------------------------------------------------


def test_recv_timeout_propagates_and_the_session_goes_on(pair):
    server, client = pair
    server.settimeout(0.05)
    ws = make_session(server)
    frame = encode_frame(Opcode.TEXT, b"in two parts", mask=MASK)
    client.sendall(frame[:9])
    with pytest.raises(TimeoutError):
        ws.receive()
    assert not ws.closed
    client.sendall(frame[9:])
    assert ws.receive() == "in two parts"


# -- we close ----------------------------------------------------------------


def answer_close(peer: Peer) -> CloseReceived:
    """Read frames until the server's Close and answer it with the same code."""
    while not isinstance(event := peer.event(), CloseReceived):
        pass
    peer.send_close(event.code)
    return event


def test_close_handshake_started_by_us(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    answerer, answered = run_thread(answer_close, peer)
    ws.close(1000, "done")
    assert join(answerer, answered) == CloseReceived(1000, "done")
    assert ws.closed and ws.close_code == 1000


def test_messages_after_our_close_are_dropped(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    peer.send(Opcode.TEXT, b"in flight")
    peer.send(Opcode.PING, b"late ping")
    peer.send_close(1000)
    ws.close()
    assert ws.closed and ws.close_code == 1000
    # Our Close went out, and no Pong after it.
    assert peer.event() == CloseReceived(1000, "")
    server.close()
    assert client.recv(100) == b""
    assert ws.receive() is None


def test_close_is_idempotent_and_sends_one_close_frame(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    peer.send_close(1000)
    ws.close(1000)
    ws.close(1001)
    assert ws.close_code == 1000
    server.close()
    assert peer.exactly(4) == b"\x88\x02\x03\xe8"
    assert client.recv(100) == b""


def test_close_gives_up_when_the_peer_never_answers(pair):
    server, client = pair
    server.settimeout(0.05)
    ws, peer = make_session(server, close_timeout=0.3), Peer(client)
    started = time.monotonic()
    ws.close(1000)
    # recv's own short timeout does not cut the wait short: close_timeout does.
    assert 0.25 < time.monotonic() - started < 2.0
    assert ws.closed and ws.close_code == 1006
    assert peer.event() == CloseReceived(1000, "")


def test_close_waits_through_recv_timeouts_for_a_slow_answer(pair):
    server, client = pair
    server.settimeout(0.02)
    ws, peer = make_session(server, close_timeout=TIMEOUT), Peer(client)

    def answer_slowly() -> None:
        assert peer.event() == CloseReceived(1000, "")
        time.sleep(0.2)
        peer.send_close(1000)

    answerer, answered = run_thread(answer_slowly)
    ws.close(1000)
    join(answerer, answered)
    assert ws.close_code == 1000


def test_close_gives_up_when_the_peer_trickles_pings(pair):
    server, client = pair
    ws, peer = make_session(server, close_timeout=0.3), Peer(client)
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.02):
            peer.send(Opcode.PING, b".")

    trickler, trickled = run_thread(trickle)
    started = time.monotonic()
    ws.close(1000)
    elapsed = time.monotonic() - started
    stop.set()
    join(trickler, trickled)
    assert elapsed < 2.0
    assert ws.close_code == 1006


def test_close_with_an_invalid_code_changes_nothing(pair):
    ws = make_session(pair[0])
    with pytest.raises(ValueError):
        ws.close(1005)
    assert not ws.closed
    ws.send("still open")


def test_close_from_another_thread_ends_a_blocked_receive(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    receiver, received = run_thread(ws.receive)
    wait_until(ws._receive_lock.locked)
    closer, closed = run_thread(ws.close, 1001)
    assert answer_close(peer) == CloseReceived(1001, "")
    join(closer, closed)
    assert join(receiver, received) is None
    assert ws.closed and ws.close_code == 1001


def test_close_from_another_thread_is_bounded_when_the_peer_is_silent(pair):
    server, client = pair
    ws, peer = make_session(server, close_timeout=0.3), Peer(client)
    receiver, received = run_thread(ws.receive)
    wait_until(ws._receive_lock.locked)
    started = time.monotonic()
    ws.close(1001)
    assert time.monotonic() - started < 2.0
    assert ws.closed and ws.close_code == 1006
    # The transport's owner then closes the socket, which ends the receive.
    server.shutdown(socket.SHUT_RDWR)
    assert join(receiver, received) is None
    assert peer.event() == CloseReceived(1001, "")


def test_peer_and_we_close_at_once(pair):
    server, client = pair
    ws, peer = make_session(server), Peer(client)
    peer.send_close(4000, "me first")
    ws.close(1000)
    assert ws.close_code == 4000 and ws.close_reason == "me first"
    assert peer.event() == CloseReceived(1000, "")


# -- against an independent client -------------------------------------------


def read_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk and len(head) < 65536, "no complete request head"
        head += chunk
    return head


def serve_one(listener: socket.socket, record: dict) -> None:
    """Accept one client, answer its handshake, then echo until it closes."""
    sock, _ = listener.accept()
    with sock:
        sock.settimeout(TIMEOUT)
        head, _, rest = read_head(sock).partition(b"\r\n\r\n")
        assert not rest, "the client spoke before the handshake was answered"
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, _, version = request_line.split(" ")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            # Repeated fields are joined with commas, as a WSGI server does.
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        key, offered = check_handshake(method, headers, version)
        chosen = "chat" if "chat" in offered else None
        fields = "".join(f"{n}: {v}\r\n" for n, v in response_headers(key, chosen))
        sock.sendall(f"HTTP/1.1 101 Switching Protocols\r\n{fields}\r\n".encode("latin-1"))
        ws = WebSocket(sock.recv, sock.sendall, subprotocol=chosen)
        record["websocket"] = ws
        for message in ws:
            if message == "server closes":
                ws.close(1001, "bye")
                break
            ws.send(message)


@pytest.fixture
def echo_server() -> Iterator[tuple[int, dict]]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    record: dict = {}
    thread, outcome = run_thread(serve_one, listener, record)
    yield listener.getsockname()[1], record
    join(thread, outcome)
    listener.close()


def test_websockets_client_talks_to_the_session(echo_server):
    client_module = pytest.importorskip("websockets.sync.client")
    port, record = echo_server
    with client_module.connect(
        f"ws://127.0.0.1:{port}/chat",
        subprotocols=["superchat", "chat"],
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        max_size=2 << 20,
    ) as client:
        assert client.subprotocol == "chat"
        client.send("héllo")
        assert client.recv(timeout=TIMEOUT) == "héllo"
        client.send(b"\x00\x01\xff")
        assert client.recv(timeout=TIMEOUT) == b"\x00\x01\xff"
        client.send(["frag", "mént", "ed"])  # one message in three frames
        assert client.recv(timeout=TIMEOUT) == "fragménted"
        assert client.ping(b"heartbeat").wait(TIMEOUT)
        big = bytes(range(256)) * 3000
        client.send(big)
        assert client.recv(timeout=TIMEOUT) == big
    ws = record["websocket"]
    assert ws.closed and ws.close_code == 1000


def test_websockets_client_sees_our_close(echo_server):
    client_module = pytest.importorskip("websockets.sync.client")
    exceptions = pytest.importorskip("websockets.exceptions")
    port, record = echo_server
    with client_module.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as client:
        assert client.subprotocol is None
        client.send("server closes")
        with pytest.raises(exceptions.ConnectionClosedOK) as caught:
            client.recv(timeout=TIMEOUT)
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (1001, "bye")
    ws = record["websocket"]
    assert ws.closed and ws.close_code == 1001
