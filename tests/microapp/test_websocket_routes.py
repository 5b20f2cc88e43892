"""WebSocket routes in-process: 426, 404/405, handshake refusals, subprotocol
choice, the handler's end (1011), hooks, and gzip passing a 101 through.

A fake stands in for the server's ``environ["wsgiserver.websocket"]``; the
real server is exercised in tests/functional/test_websocket_microapp.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import webtest
from wsgi_calls import call_wsgi, make_environ

from microapp import App, GzipMiddleware, HTTPError, Response
from microapp.websocket import UPGRADE_KEY, choose_subprotocol


class FakeWebSocket:
    """Plays back ``incoming`` and records what the app sends and closes with."""

    def __init__(self, incoming: list[str | bytes], subprotocol: str | None) -> None:
        self.incoming = list(incoming)
        self.subprotocol = subprotocol
        self.sent: list[str | bytes] = []
        self.close_code: int | None = None
        self.closed = False

    def __iter__(self):
        while self.incoming:
            yield self.incoming.pop(0)

    def send(self, message: str | bytes) -> None:
        self.sent.append(message)

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
        self.closed = True


class Refused(Exception):
    """Shaped like the server's HandshakeError: status, detail, headers."""

    def __init__(self, status: int, detail: str, headers=()) -> None:
        super().__init__(f"{status} {detail}")
        self.status, self.detail, self.headers = status, detail, headers


class FakeUpgrade:
    """Shaped like the server's WebSocketUpgrade."""

    def __init__(self, offered: list[str] | None = None, refusal: Exception | None = None,
                 incoming: list[str | bytes] | None = None) -> None:
        self.offered = offered or []
        self.refusal = refusal
        self.incoming = incoming or []
        self.websocket: FakeWebSocket | None = None

    @property
    def offered_subprotocols(self) -> list[str]:
        return list(self.offered)

    def accept(self, subprotocol: str | None = None) -> FakeWebSocket:
        if self.refusal is not None:
            raise self.refusal
        assert subprotocol is None or subprotocol in self.offered
        self.websocket = FakeWebSocket(self.incoming, subprotocol)
        return self.websocket


def upgraded_call(app: Any, upgrade: FakeUpgrade, path: str = "/ws", **kwargs: Any):
    """Call ``app`` as the server would for an accepted upgrade; returns the
    result and the heads start_response received (none are expected)."""
    heads: list[tuple[str, list]] = []

    def start_response(status, headers, exc_info=None):
        heads.append((status, headers))
        return lambda data: None

    headers = {"Upgrade": "websocket", "Connection": "Upgrade", **kwargs.pop("headers", {})}
    environ = make_environ("GET", path, headers=headers, **{UPGRADE_KEY: upgrade}, **kwargs)
    result = app(environ, start_response)
    return list(result), heads


@pytest.fixture
def app() -> App:
    app = App()

    @app.websocket("/ws")
    def echo(websocket):
        for message in websocket:
            websocket.send(message)

    @app.websocket("/rooms/<name>/<int:number>", subprotocols=["chat.v2", "chat.v1"])
    def room(websocket, name, number):
        websocket.send(f"{name}#{number}:{websocket.subprotocol}")

    @app.websocket("/boom")
    def boom(websocket):
        websocket.send("about to fail")
        raise RuntimeError("handler bug")

    @app.websocket("/http-error")
    def too_late(websocket):
        raise HTTPError(403)

    @app.websocket("/peer-gone")
    def peer_gone(websocket):
        websocket.closed = True
        raise ConnectionResetError("peer went away")

    return app


# -- without the server's upgrade offer --------------------------------------

def test_plain_get_to_a_websocket_route_gets_426_naming_websocket_in_upgrade(app):
    response = webtest.TestApp(app, lint=True).get("/ws", status=426)
    assert response.headers["Upgrade"] == "websocket"
    assert response.text == "this resource speaks WebSocket only"


def test_bundled_app_echo_endpoint_answers_426_over_plain_http(client):
    response = client.get("/ws/echo", status=426)
    assert response.headers["Upgrade"] == "websocket"


def test_head_to_a_websocket_route_gets_the_426_head_without_content(app):
    exchange = call_wsgi(app, "HEAD", "/ws")
    assert exchange.code == 426
    assert exchange.header("Upgrade") == "websocket"
    assert exchange.body == b""


def test_websocket_route_answers_405_to_other_methods_with_allow(app):
    response = webtest.TestApp(app, lint=True).post("/ws", status=405)
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_unknown_path_is_404_even_with_an_upgrade_offer(app):
    result, heads = upgraded_call(app, FakeUpgrade(), path="/nowhere")
    assert heads[0][0].startswith("404 ")
    assert result == [b"Not Found"]


def test_a_get_route_and_a_websocket_route_cannot_share_a_pattern():
    app = App()
    app.get("/ws")(lambda request: "page")
    with pytest.raises(ValueError, match="already routed"):
        app.websocket("/ws")(lambda websocket: None)


def test_subprotocols_must_be_a_list_not_one_name():
    with pytest.raises(TypeError):
        App().websocket("/ws", subprotocols="chat")(lambda websocket: None)


# -- the handshake --------------------------------------------------------

@pytest.mark.parametrize(("refusal", "status", "headers"), [
    (Refused(400, "Sec-WebSocket-Key is missing"), 400, {}),
    (Refused(426, "WebSocket version '8' is not supported",
             (("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"))),
     426, {"Upgrade": "websocket", "Sec-WebSocket-Version": "13"}),
    (Refused(503, "too many WebSocket connections"), 503, {}),
])
def test_a_refused_handshake_answers_its_status_and_headers(app, refusal, status, headers):
    result, heads = upgraded_call(app, FakeUpgrade(refusal=refusal))
    assert len(heads) == 1
    sent_status, sent_headers = heads[0]
    assert sent_status.startswith(f"{status} ")
    assert set(headers.items()) <= set(sent_headers)
    assert result == [refusal.detail.encode()]


def test_a_refusal_from_reading_the_offered_subprotocols_is_answered_too(app):
    class BadHandshake(FakeUpgrade):
        @property
        def offered_subprotocols(self):
            raise Refused(400, "Connection: Upgrade is missing")

    result, heads = upgraded_call(app, BadHandshake(), path="/rooms/a/1")
    assert heads[0][0].startswith("400 ")


def test_an_accept_failure_without_a_status_is_not_turned_into_an_answer(app):
    with pytest.raises(KeyError):
        upgraded_call(app, FakeUpgrade(refusal=KeyError("server bug")))


def test_error_handler_and_after_hooks_see_refusals(app):
    seen = []

    @app.error_handler(426)
    def upgrade_required(request, error):
        return "use a WebSocket client"

    @app.after_request
    def stamp(request, response):
        seen.append(response.status)
        response.set_header("X-Seen", "yes")
        return response

    response = webtest.TestApp(app, lint=True).get("/ws", status=426)
    assert response.text == "use a WebSocket client"
    assert response.headers["Upgrade"] == "websocket"
    assert response.headers["X-Seen"] == "yes"
    assert seen == [426]


# -- after the 101 --------------------------------------------------------

def test_accepted_route_runs_the_handler_and_sends_no_http_response(app):
    upgrade = FakeUpgrade(incoming=["hello", b"\x00bin"])
    result, heads = upgraded_call(app, upgrade)
    assert heads == [] and result == []
    assert upgrade.websocket.sent == ["hello", b"\x00bin"]
    assert upgrade.websocket.close_code is None  # the server closes it (1000)


def test_path_params_reach_the_handler_converted(app):
    upgrade = FakeUpgrade(offered=["chat.v1"])
    upgraded_call(app, upgrade, path="/rooms/lobby/7")
    assert upgrade.websocket.sent == ["lobby#7:chat.v1"]


@pytest.mark.parametrize(("offered", "chosen"), [
    (["chat.v1", "chat.v2"], "chat.v1"),  # the client's preference wins
    (["chat.v2", "chat.v1"], "chat.v2"),
    (["other", "chat.v2"], "chat.v2"),
    (["other"], None),
    ([], None),
])
def test_the_first_offered_subprotocol_the_app_speaks_is_accepted(app, offered, chosen):
    upgrade = FakeUpgrade(offered=offered)
    upgraded_call(app, upgrade, path="/rooms/lobby/1")
    assert upgrade.websocket.subprotocol == chosen


def test_a_route_without_subprotocols_accepts_none_even_when_offered(app):
    upgrade = FakeUpgrade(offered=["chat.v1"], incoming=["x"])
    upgraded_call(app, upgrade)
    assert upgrade.websocket.subprotocol is None


def test_choose_subprotocol_follows_the_offer_order():
    assert choose_subprotocol(["b", "a"], ("a", "b")) == "b"
    assert choose_subprotocol(["c"], ("a",)) is None


def test_handler_exception_closes_with_1011_and_propagates_without_a_response(app):
    upgrade = FakeUpgrade()
    heads = []
    environ = make_environ("GET", "/boom", **{UPGRADE_KEY: upgrade})
    with pytest.raises(RuntimeError, match="handler bug"):
        app(environ, lambda status, headers, exc_info=None: heads.append(status))
    assert heads == []
    assert upgrade.websocket.sent == ["about to fail"]
    assert upgrade.websocket.close_code == 1011


def test_http_error_after_accept_closes_with_1011_and_is_reported_as_a_bug(app):
    upgrade = FakeUpgrade()
    environ = make_environ("GET", "/http-error", **{UPGRADE_KEY: upgrade})
    with pytest.raises(RuntimeError, match="after the WebSocket was accepted"):
        app(environ, lambda *args: pytest.fail("no HTTP response after a 101"))
    assert upgrade.websocket.close_code == 1011


def test_connection_error_once_the_peer_is_gone_ends_the_handler_quietly(app):
    upgrade = FakeUpgrade()
    result, heads = upgraded_call(app, upgrade, path="/peer-gone")
    assert result == [] and heads == []
    assert upgrade.websocket.close_code is None


def test_connection_error_while_still_open_is_a_handler_error():
    app = App()

    @app.websocket("/ws")
    def broken(websocket):
        raise ConnectionRefusedError("some other connection")

    upgrade = FakeUpgrade()
    with pytest.raises(ConnectionRefusedError):
        upgraded_call(app, upgrade)
    assert upgrade.websocket.close_code == 1011


# -- hooks ----------------------------------------------------------------

def test_before_hook_may_refuse_the_upgrade_with_an_http_answer(app):
    @app.before_request
    def members_only(request):
        if "Cookie" not in request.headers:
            return Response("members only", 403)
        return None

    upgrade = FakeUpgrade()
    result, heads = upgraded_call(app, upgrade)
    assert heads[0][0].startswith("403 ")
    assert upgrade.websocket is None  # never accepted
    result, heads = upgraded_call(app, upgrade, headers={"Cookie": "member=1"})
    assert heads == [] and upgrade.websocket is not None


def test_after_hooks_do_not_run_after_the_upgrade(app):
    ran = []
    app.after_request(lambda request, response: ran.append(response.status) or response)
    result, heads = upgraded_call(app, FakeUpgrade(incoming=["x"]))
    assert heads == [] and ran == []


# -- middleware -------------------------------------------------------------

def test_bundled_app_gzip_passes_the_upgrade_through(bundled):
    upgrade = FakeUpgrade(incoming=["ping"])
    result, heads = upgraded_call(bundled, upgrade, path="/ws/echo",
                                  headers={"Accept-Encoding": "gzip"})
    assert heads == [] and result == []
    assert upgrade.websocket.sent == ["ping"]


def test_gzip_passes_an_empty_headless_answer_through_untouched():
    def switched(environ, start_response):
        return []

    heads = []
    result = GzipMiddleware(switched, minimum_size=0)(
        make_environ(headers={"Accept-Encoding": "gzip"}), lambda *args: heads.append(args))
    assert list(result) == [] and heads == []


def test_gzip_still_refuses_a_body_without_start_response():
    def forgetful(environ, start_response):
        return [b"body"]

    with pytest.raises(RuntimeError, match="did not call start_response"):
        GzipMiddleware(forgetful)(make_environ(), lambda *args: None)
