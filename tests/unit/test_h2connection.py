"""An HTTP/2 connection over the fake transport and clock, with the h2
library as the client: streams, flow control both ways, the guards
against floods, and every timeout, without sleeping."""

from __future__ import annotations

import pytest

pytest.importorskip("h2", reason="HTTP/2 needs h2: pip install 'wsgiserver[http2]'")

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402

from wsgiserver.drive import Http2Options  # noqa: E402
from wsgiserver.h2connection import Http2Connection  # noqa: E402
from wsgiserver.protocol.parser import ParserLimits  # noqa: E402

from .fakes import FakeTransport, ManualClock, settings_for  # noqa: E402


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
        self.submitted = []
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
        while self.submitted:
            self.submitted.pop(0).run()

    def exchange(self) -> list:
        """Deliver what each side has for the other until both are quiet."""
        new = []
        for _ in range(1000):
            if self.run_streams:
                self.run_submitted()
            sent, outgoing, events = self._client_reads_and_answers()
            new += events
            if self.connection.closed:
                break
            if self.transport.readable() or (self.submitted and self.run_streams):
                self.step = self.connection.on_ready()
                continue
            if not sent and not outgoing:
                break
        self.events += new
        return new

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


def test_a_producing_app_waits_for_credit_and_reads_the_frames_itself():
    pieces = [b"p" * 50_000 for _ in range(8)]

    def app(environ, start_response):
        start_response("200 OK", [])
        return iter(pieces)

    client = Client(app, output_high_water=60_000)
    stream = client.request("/")
    # The app runs here, on the test's thread, and must wait for the client's
    # WINDOW_UPDATEs; the fake transport delivers them as it waits.
    client.exchange()
    assert client.response(stream)[1:] == (b"".join(pieces), True)


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
