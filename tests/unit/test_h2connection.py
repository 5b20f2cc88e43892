"""An HTTP/2 connection over the fake transport and clock, with the h2
library as the client: streams, flow control both ways, the guards
against floods, and every timeout, without sleeping."""

from __future__ import annotations

import functools
import threading

import pytest

pytest.importorskip("h2", reason="HTTP/2 needs h2: pip install '.[http2]'")

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402

from wsgiserver.budget import BodyBudgets, Budget, FileCount  # noqa: E402
from wsgiserver.drive import Http2Options, Step  # noqa: E402
from wsgiserver.h2connection import Http2Connection  # noqa: E402
from wsgiserver.outqueue import SpoolSettings  # noqa: E402
from wsgiserver.protocol.policy import ParserLimits  # noqa: E402

from .fakes import FakeTransport, ManualClock, settings_for  # noqa: E402

_clients: list = []


@pytest.fixture(autouse=True)
def _no_thread_left():
    """Every stream thread a test started ends with it."""
    yield
    while _clients:
        _clients.pop().close()


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello " + environ["PATH_INFO"].encode()]


class Client:
    """The h2 library as a client, and our connection as the server, driven
    the way the server drives it: reads when bytes arrive, streams run when
    submitted (here on the spot, or held back by the test)."""

    def __init__(self, app=hello, *, run_streams: bool = True, client_settings=None,
                 **overrides) -> None:
        self.clock = ManualClock()
        self.transport = FakeTransport(self.clock)
        overrides.setdefault("http2", Http2Options(max_concurrent_streams=10))
        self.settings = settings_for(app, self.clock, **overrides)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        if client_settings:
            self.h2.local_settings = h2.settings.Settings(client=True,
                                                         initial_values=client_settings)
        self.h2.initiate_connection()
        _clients.append(self)
        self.submitted = []
        self.threads: list[threading.Thread] = []
        self.went_long: list = []  # streams whose thread was detached to wait
        self.armed = []
        self.run_streams = run_streams
        self.events: list = []
        self.connection = Http2Connection(
            self.transport, self.settings, arm=self.armed.append, submit=self._submit,
            initial=self.h2.data_to_send())
        self.step = self.connection.start()
        self.transport.on_wait = self.client_turn
        self.exchange()

    def client_turn(self) -> None:
        """What the client does while the server's thread waits for it: read
        what was sent, acknowledge it, send its answers."""
        _, _, events = self._client_reads_and_answers()
        self.events += events

    def _client_reads_and_answers(self) -> tuple[bytes, bytes, list]:
        """The client takes what the server sent (acknowledging DATA) and
        sends what it has: (bytes taken, bytes sent, events)."""
        sent = self.transport.take_sent()
        events = self.h2.receive_data(sent) if sent else []
        for event in events:
            if isinstance(event, h2.events.DataReceived) and self.auto_ack:
                self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                  event.stream_id)
        outgoing = self.h2.data_to_send()
        if outgoing:
            self.transport.arrive(outgoing)
        return sent, outgoing, events

    def _submit(self, stream) -> None:
        self.submitted.append(stream)

    def run_submitted(self) -> None:
        """Each stream on a thread of its own, as the pool runs them; the
        test's thread waits until it ends or waits for its client (it then
        goes on in the background while the test's thread plays the poller)."""
        while self.submitted:
            stream = self.submitted.pop(0)
            thread = threading.Thread(target=stream.run,
                                      args=(functools.partial(self.went_long.append, stream),))
            thread.start()
            for _ in range(2000):
                thread.join(0.005)
                if not thread.is_alive() or stream.waiting:
                    break
            if thread.is_alive():
                self.threads.append(thread)

    def exchange(self) -> list:
        """Deliver what each side has for the other until both are quiet
        (and every stream's thread has ended, or waits for what never comes)."""
        new = []
        for _ in range(2000):
            if self.run_streams:
                self.run_submitted()
            sent, outgoing, events = self._client_reads_and_answers()
            new += events
            if self.connection.closed:
                break
            if self.transport.readable() or self._asked_to_write() or \
                    (self.submitted and self.run_streams):
                self.step = self.connection.on_ready()
                continue
            if not sent and not outgoing and not self._threads_moving():
                break
        self.events += new
        return new

    def poller_turn(self) -> None:
        """The poller's side sends what the streams' threads framed, as the
        server does once a thread arms the socket for writing."""
        if self._asked_to_write():
            self.step = self.connection.on_ready()

    def _asked_to_write(self) -> bool:
        """Whether a stream's thread armed the socket for writing since the
        last look (what it framed waits for the poller's side to send)."""
        count = len(self.armed)  # threads may append meanwhile
        asked = any(step is not Step.READ for step in self.armed[:count])
        del self.armed[:count]
        return asked

    def _threads_moving(self) -> bool:
        """Let the streams' threads run a moment: True if one sent since."""
        self.threads = [thread for thread in self.threads if thread.is_alive()]
        if not self.threads:
            return False
        before = self.transport.sent_count()
        self.threads[0].join(0.01)
        return self.transport.sent_count() != before or bool(self.armed) or \
            not all(thread.is_alive() for thread in self.threads)

    def close(self) -> None:
        """End what still runs: the connection's close fails waiting streams."""
        self.connection.close()
        for thread in self.threads:
            thread.join(5.0)
            assert not thread.is_alive(), "a stream's thread outlived its connection"

    auto_ack = True

    def request(self, path="/", method="GET", body=None, headers=(), end=True) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        block = [(":method", method), (":scheme", "https"), (":path", path),
                 (":authority", "example.test"), *headers]
        if method == "CONNECT":  # RFC 9113 8.5: no :scheme, no :path
            block = [(":method", method), (":authority", "example.test:443")]
        self.h2.send_headers(stream_id, block, end_stream=body is None and end)
        if body is not None:
            self.send_body(stream_id, body, end)
        return stream_id

    def send_body(self, stream_id: int, body: bytes, end: bool) -> None:
        """DATA frames as the client's windows allow, exchanging meanwhile."""
        for _ in range(10_000):
            if not body:
                break
            window = min(self.h2.local_flow_control_window(stream_id),
                         self.h2.max_outbound_frame_size)
            if window <= 0:
                self.exchange()
                continue
            self.h2.send_data(stream_id, body[:window])
            body = body[window:]
        if end:
            self.h2.end_stream(stream_id)

    def response(self, stream_id: int) -> tuple[dict, bytes, bool]:
        """(headers, body, ended) the client has for ``stream_id``."""
        headers: dict = {}
        body = b""
        ended = False
        for event in self.events:
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
            elif isinstance(event, h2.events.StreamEnded):
                ended = True
        return headers, body, ended

    def of_type(self, kind) -> list:
        return [event for event in self.events if isinstance(event, kind)]

    def wait(self, seconds: float) -> None:
        """Time passes; the reaper expires what is due."""
        self.clock.advance(seconds)
        if not self.connection.closed and self.clock.monotonic() > self.connection.deadline:
            self.connection.expire()
        self.exchange()


def test_requests_get_their_responses_on_one_connection():
    client = Client()
    first, second = client.request("/a"), client.request("/b")
    client.exchange()
    headers, body, ended = client.response(first)
    assert (headers[b":status"], headers[b"content-length"], body, ended) == \
        (b"200", b"8", b"hello /a", True)
    assert client.response(second)[1:] == (b"hello /b", True)


def test_a_body_arrives_whole_before_the_app_reads_it():
    seen = []

    def app(environ, start_response):
        seen.append((environ["CONTENT_LENGTH"], environ["wsgi.input"].read()))
        start_response("200 OK", [])
        return [b""]

    client = Client(app, body_memory_bytes=10)
    stream = client.request("/", "POST", body=b"x" * 100_000)
    client.exchange()
    assert seen == [("100000", b"x" * 100_000)]
    assert client.response(stream)[0][b":status"] == b"200"


def test_a_response_larger_than_the_window_waits_for_credit_without_a_thread():
    big = b"z" * 300_000

    def app(environ, start_response):
        start_response("200 OK", [])
        return [big]

    client = Client(app)
    client.auto_ack = False  # the client acknowledges nothing: the window fills
    stream = client.request("/big")
    client.exchange()
    headers, body, ended = client.response(stream)
    assert len(body) == 65_535 and not ended  # the default window, no more
    assert not client.connection.busy  # the app returned: no thread waits
    client.auto_ack = True
    client.h2.acknowledge_received_data(len(body), stream)
    client.exchange()
    assert client.response(stream)[1:] == (big, True)


def test_head_204_and_304_send_no_data_frames():
    def app(environ, start_response):
        status = {"/204": "204 No Content", "/304": "304 Not Modified"}.get(
            environ["PATH_INFO"], "200 OK")
        start_response(status, [("Content-Length", "5")] if status == "200 OK" else [])
        return [b"hello"] if status == "200 OK" else []

    client = Client(app)
    ids = [client.request("/", "HEAD"), client.request("/204"), client.request("/304")]
    client.exchange()
    for stream_id in ids:
        assert client.response(stream_id)[1:] == (b"", True)
    data = [e for e in client.of_type(h2.events.DataReceived) if e.stream_id in ids]
    assert data == []
    assert client.response(ids[0])[0][b"content-length"] == b"5"


def test_an_error_before_the_head_is_a_500_and_after_it_a_reset_of_that_stream_only():
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/before":
            raise RuntimeError("boom")
        start_response("200 OK", [])
        if environ["PATH_INFO"] == "/after":
            def body():
                yield b"part"
                raise RuntimeError("boom")
            return body()
        return [b"fine"]

    client = Client(app)
    before, after, fine = client.request("/before"), client.request("/after"), client.request("/")
    client.exchange()
    assert client.response(before)[0][b":status"] == b"500"
    resets = [e for e in client.of_type(h2.events.StreamReset) if e.stream_id == after]
    assert resets and resets[0].error_code == 2  # INTERNAL_ERROR
    assert client.response(fine)[1:] == (b"fine", True)


def test_a_refused_request_is_answered_on_its_stream_and_the_connection_goes_on():
    client = Client()
    bad = client.request("/", "CONNECT")
    good = client.request("/ok")
    client.exchange()
    assert client.response(bad)[0][b":status"] == b"501"
    assert client.response(good)[1:] == (b"hello /ok", True)


@pytest.mark.parametrize("bad", [
    [("X-Upper", "1")],
    [("connection", "close")],
    [(":protocol", "websocket")],
])
def test_a_malformed_request_resets_its_stream_and_the_others_go_on(bad):
    client = Client()
    before = client.request("/before")
    client.exchange()
    # h2 the client would refuse to send these: its validation is off here.
    client.h2.config.validate_outbound_headers = False
    client.h2.config.normalize_outbound_headers = False
    malformed = client.request("/bad", headers=bad)
    after = client.request("/after")
    client.exchange()
    resets = [e for e in client.of_type(h2.events.StreamReset) if e.stream_id == malformed]
    assert resets and resets[0].error_code == 1  # PROTOCOL_ERROR
    assert client.response(malformed)[0] == {}
    assert client.response(before)[1] == b"hello /before"
    assert client.response(after)[1] == b"hello /after"
    assert not client.of_type(h2.events.ConnectionTerminated)
    assert not client.connection.closed


def test_malformed_trailers_reset_their_stream_only():
    client = Client()
    client.h2.config.validate_outbound_headers = False
    stream = client.request("/t", method="POST", body=b"abc", end=False)
    client.h2.send_headers(stream, [(":path", "/x")], end_stream=True)
    good = client.request("/t2", method="POST", body=b"abc", end=False)
    client.h2.send_headers(good, [("x-sum", "1")], end_stream=True)
    client.exchange()
    resets = [e for e in client.of_type(h2.events.StreamReset) if e.stream_id == stream]
    assert resets and resets[0].error_code == 1
    assert client.response(good)[1] == b"hello /t2"
    assert not client.of_type(h2.events.ConnectionTerminated)


def test_a_body_beyond_the_limit_is_413_and_the_client_is_asked_to_stop():
    client = Client(limits=ParserLimits(max_body_bytes=1000))
    stream = client.request("/", "POST", body=b"x" * 2000, end=False)
    client.exchange()
    assert client.response(stream)[0][b":status"] == b"413"
    resets = [e for e in client.of_type(h2.events.StreamReset) if e.stream_id == stream]
    assert resets and resets[0].error_code == 0  # NO_ERROR: stop sending


def test_a_body_that_stops_coming_gets_408_on_its_stream():
    client = Client(body_timeout=5.0, min_body_rate=0)
    stream = client.request("/", "POST", body=b"x" * 10, end=False)
    client.exchange()
    assert client.response(stream)[0] == {}
    client.wait(6.0)
    assert client.response(stream)[0][b":status"] == b"408"
    assert not client.connection.closed


def test_a_window_held_shut_resets_the_stream_after_the_write_timeout():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"y" * 1000]

    client = Client(app, write_timeout=10.0,
                    client_settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    stream = client.request("/")
    client.exchange()
    headers, body, ended = client.response(stream)
    assert headers[b":status"] == b"200" and body == b"" and not ended
    client.wait(11.0)
    resets = [e for e in client.of_type(h2.events.StreamReset) if e.stream_id == stream]
    assert resets and resets[0].error_code == 8  # CANCEL
    assert not client.connection.closed
    assert client.response(client.request("/next"))[0] == {}  # the connection still serves
    client.exchange()


def test_a_producing_app_waits_for_credit_detached_and_never_reads_frames():
    pieces = [b"p" * 50_000 for _ in range(8)]

    def app(environ, start_response):
        start_response("200 OK", [])
        return iter(pieces)

    client = Client(app, output_high_water=60_000)
    client.transport.on_wait = None
    stream = client.request("/")
    # The app waits for the client's WINDOW_UPDATEs on its thread; the
    # test's thread, as the poller's side, reads them and wakes it.
    client.exchange()
    assert client.response(stream)[1:] == (b"".join(pieces), True)
    assert {s.id for s in client.went_long} == {stream}  # detached from the pool to wait


def test_an_idle_connection_says_goaway_and_closes():
    client = Client(keepalive_timeout=15.0)
    client.request("/")
    client.exchange()
    client.wait(16.0)
    assert client.of_type(h2.events.ConnectionTerminated)
    assert client.transport.write_shut or client.connection.closed


def frames_of(data: bytes) -> list:
    """The frames in bytes a server sent (hyperframe parses them)."""
    from hyperframe.frame import Frame

    frames = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        frames.append(frame)
        data = data[9 + length:]
    return frames


def test_draining_says_goaway_and_lets_the_open_stream_finish():
    client = Client(run_streams=False)
    stream = client.request("/last")
    client.exchange()
    client.connection.begin_draining()
    # h2 as a client stops reading at a GOAWAY: the frames are read here.
    goaway = [f for f in frames_of(client.transport.take_sent()) if f.type == 0x7]
    assert [(f.error_code, f.last_stream_id) for f in goaway] == [(0, stream)]
    client.run_submitted()
    client.poller_turn()
    sent = frames_of(client.transport.take_sent())
    assert [(f.type, f.stream_id) for f in sent] == [(0x1, stream), (0x0, stream)]
    assert sent[1].data == b"hello /last" and "END_STREAM" in sent[1].flags


def test_a_header_block_never_finished_closes_after_the_header_timeout():
    client = Client(header_timeout=10.0)
    # HEADERS without END_HEADERS, by hand: h2 as a client never sends it.
    client.transport.arrive(bytes.fromhex("000001") + b"\x01\x00" + (1).to_bytes(4, "big") + b"\x82")
    client.exchange()
    assert not client.connection.closed
    client.wait(11.0)
    goaway = client.of_type(h2.events.ConnectionTerminated)
    assert goaway and goaway[0].error_code == 1  # PROTOCOL_ERROR


def test_rapid_reset_is_answered_with_enhance_your_calm():
    client = Client(run_streams=False)
    for _ in range(200):
        stream = client.request("/")
        client.h2.reset_stream(stream)
    client.exchange()
    goaway = client.of_type(h2.events.ConnectionTerminated)
    assert goaway and goaway[0].error_code == 0xB
    assert client.submitted == [] or all(s.canceled for s in client.submitted)


def test_a_ping_flood_is_answered_with_enhance_your_calm():
    client = Client()
    for number in range(1500):
        client.h2.ping(number.to_bytes(8, "big"))
    client.exchange()
    goaway = client.of_type(h2.events.ConnectionTerminated)
    assert goaway and goaway[0].error_code == 0xB


def test_pings_at_a_human_rate_are_answered():
    client = Client()
    for number in range(50):
        client.h2.ping(number.to_bytes(8, "big"))
        client.exchange()
        client.clock.advance(0.5)
    assert len(client.of_type(h2.events.PingAckReceived)) == 50
    assert not client.of_type(h2.events.ConnectionTerminated)


MiB = 1 << 20


def test_bodies_of_many_streams_share_one_connections_memory_then_spool():
    server_memory = Budget(64 * MiB)
    budgets = BodyBudgets(server_memory, Budget(1 << 30), FileCount(10_000))
    received = {}

    def app(environ, start_response):
        received[environ["PATH_INFO"]] = len(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b"ok"]

    client = Client(app, body_budgets=budgets, body_memory_bytes=64 * 1024,
                    http2=Http2Options(max_concurrent_streams=100))
    streams = [client.request(f"/{n}", method="POST", body=b"b" * 100_000, end=False)
               for n in range(50)]
    client.exchange()
    # 50 bodies of 100 kB arrived, none ended: the connection keeps 2 x 64 KiB
    # of them in memory, the rest waits on disk.
    assert server_memory.used <= 2 * 64 * 1024
    assert budgets.spool.used >= 50 * 100_000 - 2 * 64 * 1024
    for stream in streams:
        client.h2.end_stream(stream)
    client.exchange()
    assert all(client.response(stream)[1] == b"ok" for stream in streams)
    assert set(received.values()) == {100_000}
    assert server_memory.used == 0 and budgets.spool.used == 0


def windows_shut(client_settings=None):
    return {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}


def test_responses_waiting_for_shut_windows_spool_past_the_connections_share():
    body = b"r" * (1 * MiB)
    spool = SpoolSettings(None, per_response=2 * MiB, budget=Budget(100 * MiB))

    def app(environ, start_response):
        start_response("200 OK", [])
        if environ["PATH_INFO"].startswith("/gen"):
            return (body[i:i + 65536] for i in range(0, len(body), 65536))
        return [body]

    client = Client(app, output_high_water=64 * 1024, output_spool=spool,
                    http2=Http2Options(max_concurrent_streams=100),
                    client_settings=windows_shut())
    streams = [client.request(f"/list{n}") for n in range(10)] + \
        [client.request(f"/gen{n}") for n in range(10)]
    client.exchange()
    connection = client.connection
    # 20 MiB of responses made, the windows shut: the connection holds its
    # share in memory (4 x 64 KiB), the rest is spooled, and no application
    # waits: they all returned (streamed ones too).
    assert connection.output_share.used <= connection.output_share.limit == 256 * 1024
    assert spool.budget.used >= 20 * MiB - 256 * 1024
    assert not connection.busy and not client.went_long
    client.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    client.h2.increment_flow_control_window(1 << 30)
    client.exchange()
    for stream in streams:
        assert client.response(stream)[1:] == (body, True)
    assert spool.budget.used == 0 and connection.output_share.used == 0


def test_without_spool_room_producing_apps_wait_detached_within_the_share():
    piece = b"w" * 65536

    def app(environ, start_response):
        start_response("200 OK", [])
        return (piece for _ in range(16))

    client = Client(app, output_high_water=64 * 1024, write_timeout=30.0,
                    output_spool=SpoolSettings(None, per_response=0, budget=Budget(0)),
                    http2=Http2Options(max_concurrent_streams=100),
                    client_settings=windows_shut())
    streams = [client.request(f"/{n}") for n in range(8)]
    client.exchange()
    connection = client.connection
    # No spool: each application waits (detached from the pool) once the
    # connection's memory share is used; what is queued stays near it.
    assert {s.id for s in client.went_long} == set(streams)
    assert connection.output_share.used <= connection.output_share.limit + 8 * len(piece)
    client.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    client.h2.increment_flow_control_window(1 << 30)
    for _ in range(50):
        client.exchange()
        if all(client.response(stream)[2] for stream in streams):
            break
    for stream in streams:
        assert client.response(stream)[1:] == (piece * 16, True)


def test_a_body_the_spool_has_no_room_for_is_503_with_retry_after_as_on_http11():
    # Memory for 64 KiB, no spool room at all: a larger body is refused.
    budgets = BodyBudgets(Budget(64 * 1024), Budget(0), FileCount(10))
    client = Client(body_budgets=budgets, body_memory_bytes=64 * 1024)
    stream = client.request("/up", method="POST", body=b"u" * 200_000, end=False)
    client.exchange()
    headers, body, _ = client.response(stream)
    assert headers[b":status"] == b"503" and headers[b"retry-after"] == b"5"
    assert b"cannot take this body now" in body
    assert budgets.memory.used == 0 and budgets.spool.used == 0


def test_the_responses_of_one_turn_go_out_in_one_write():
    client = Client(run_streams=False)
    streams = [client.request(f"/{n}") for n in range(5)]
    client.exchange()  # the requests are read; their streams wait for threads
    writes = []
    send = client.transport.send
    client.transport.send = lambda data: writes.append(len(data)) or send(data)
    client.run_submitted()
    assert not writes, "the streams' threads frame, the poller's side writes"
    client.poller_turn()
    assert len(writes) == 1
    client.exchange()
    for stream in streams:
        assert client.response(stream)[1:] == (b"hello /%d" % (stream // 2), True)


def test_an_app_slower_than_the_write_timeout_still_gets_its_big_write_out():
    # The client's time to take output counts from when it was queued, not
    # from when the stream last moved: an application that works longer than
    # --write-timeout before a write larger than its buffer is not reset.
    clients = []

    def slow(environ, start_response):
        clients[0].clock.advance(31.0)  # past the 30 s write timeout
        start_response("200 OK", [])
        return iter([b"x" * 100_000, b"y" * 10])

    client = Client.__new__(Client)
    clients.append(client)
    Client.__init__(client, slow, output_high_water=60_000)
    stream = client.request("/")
    client.exchange()
    assert not [e for e in client.of_type(h2.events.StreamReset) if e.stream_id == stream]
    _, body, ended = client.response(stream)
    assert ended and len(body) == 100_010


def test_the_reaper_looking_before_the_poller_does_not_reset_a_finished_response():
    clients = []

    def slow(environ, start_response):
        clients[0].clock.advance(31.0)
        start_response("200 OK", [])
        return [b"x" * 10]

    client = Client.__new__(Client)
    clients.append(client)
    Client.__init__(client, slow, run_streams=False)
    stream = client.request("/")
    client.exchange()
    client.submitted.pop(0).run()  # the stream's thread, then the reaper first
    if client.connection.deadline < client.clock.monotonic():
        client.connection.expire()
    client.exchange()
    assert not [e for e in client.of_type(h2.events.StreamReset) if e.stream_id == stream]
    _, body, ended = client.response(stream)
    assert ended and body == b"x" * 10


def test_a_second_draining_pass_writes_what_a_stream_asked_for():
    client = Client(run_streams=False)
    client.request("/last")
    client.exchange()
    client.connection.begin_draining()  # the reaper's first pass: GOAWAY
    client.transport.take_sent()
    client.run_submitted()  # the application answers and asks the poller to look
    client.connection.begin_draining()  # the reaper's next pass, before the poller's turn
    assert client.transport.take_sent(), "the response waits for a turn that may never come"


def test_head_only_streams_do_not_split_a_turn_into_two_writes():
    client = Client(run_streams=False)
    for path, method in [("/a", "HEAD"), ("/b", "HEAD"), ("/c", "GET")]:
        client.request(path, method=method)
    client.exchange()
    writes = []
    send = client.transport.send
    client.transport.send = lambda data: writes.append(len(data)) or send(data)
    client.run_submitted()
    client.poller_turn()
    assert len(writes) == 1, writes


def test_answers_to_a_client_that_reads_nothing_are_counted_not_left_in_h2():
    # While the socket takes nothing, h2's own answers (PING acknowledgements)
    # join the send queue, where they count against the limit past which the
    # connection stops reading its client; they used to pile up inside h2.
    def big(environ, start_response):
        start_response("200 OK", [])
        return [b"x" * 60_000]

    client = Client(big)
    client.transport.reads = 0  # the client stops reading
    client.request("/")
    client.exchange()
    connection = client.connection
    queued = connection._queue.waiting_bytes
    for n in range(50):
        client.h2.ping(b"%08d" % n)
        client.transport.arrive(client.h2.data_to_send())
        client.clock.advance(0.5)  # slowly: under the flood guard
        connection.on_ready()
    assert connection._queue.waiting_bytes >= queued + 50 * 17  # a PING ACK is 17 bytes


def trickle(client, stream, every, rounds):
    """A byte of the body every ``every`` seconds until the stream is
    answered (``rounds`` bytes at most)."""
    for _ in range(rounds):
        client.wait(every)
        if client.response(stream)[0]:
            return
        client.send_body(stream, b"z", end=False)
        client.exchange()


def test_a_body_that_trickles_after_a_fast_start_gets_408_by_http11s_sliding_window():
    # The same rule as HTTP/1.1 (body.BodyClock): nearly all of it at once,
    # then a byte every 29 s. HTTP/2's own allowance (30 s plus a second per
    # KiB received) gave this over 17 minutes.
    client = Client(body_timeout=30.0, min_body_rate=1024, body_memory_bytes=1 << 20,
                    client_settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    stream = client.request("/", "POST", body=b"z" * 60_000, end=False)
    client.exchange()
    trickle(client, stream, every=29.0, rounds=10)
    assert client.response(stream)[0][b":status"] == b"408"
    assert client.clock.monotonic() - 1000.0 < 90  # within a window or two
    assert not client.connection.closed


def test_an_http2_body_may_take_up_to_max_body_seconds_and_no_more():
    client = Client(body_timeout=30.0, min_body_rate=0, max_body_seconds=60.0)
    stream = client.request("/", "POST", body=b"x", end=False)
    client.exchange()
    trickle(client, stream, every=20.0, rounds=5)
    assert client.response(stream)[0][b":status"] == b"408"
    # A byte every 20 s keeps it going until the cap, not 30 s in all.
    assert 60 <= client.clock.monotonic() - 1000.0 <= 61
