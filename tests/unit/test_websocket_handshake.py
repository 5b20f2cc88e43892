"""The opening handshake (RFC 6455 section 4.2) and the environ helper."""

from __future__ import annotations

import pytest

from wsgiserver.websocket import (
    HandshakeError,
    accept_value,
    check_handshake,
    headers_from_request,
    response_headers,
)

# The key of RFC 6455 section 1.3's example, and its accept value.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def handshake_headers(**changes: str | None) -> dict[str, str]:
    """A valid client handshake's fields; a change of None removes the field."""
    headers = {
        "host": "server.example.com",
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": KEY,
        "sec-websocket-version": "13",
        "origin": "http://example.com",
    }
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


def status_of(method="GET", http_version="HTTP/1.1", **changes) -> int:
    with pytest.raises(HandshakeError) as caught:
        check_handshake(method, handshake_headers(**changes), http_version)
    return caught.value.status


def test_accept_value_matches_the_rfc_example():
    assert accept_value(KEY) == ACCEPT


def test_valid_handshake_returns_the_key_and_no_subprotocols():
    assert check_handshake("GET", handshake_headers(), "HTTP/1.1") == (KEY, [])


@pytest.mark.parametrize("version", ["HTTP/1.1", "1.1", "HTTP/1.2", "HTTP/2.0"])
def test_http_1_1_or_higher_is_accepted(version):
    assert check_handshake("GET", handshake_headers(), version)[0] == KEY


def test_subprotocols_come_back_in_the_clients_order():
    headers = handshake_headers(sec_websocket_protocol="chat, superchat,v2.json")
    assert check_handshake("GET", headers, "HTTP/1.1") == (KEY, ["chat", "superchat", "v2.json"])


@pytest.mark.parametrize(
    "upgrade, connection",
    [
        ("WebSocket", "upgrade"),
        ("websocket", "keep-alive, Upgrade"),
        ("h2c, websocket", "Upgrade,keep-alive"),
        ("WEBSOCKET", "UPGRADE"),
    ],
)
def test_upgrade_and_connection_are_case_insensitive_lists(upgrade, connection):
    headers = handshake_headers(upgrade=upgrade, connection=connection)
    assert check_handshake("GET", headers, "HTTP/1.1")[0] == KEY


BAD_REQUESTS = {
    "POST": {"method": "POST"},
    "HEAD": {"method": "HEAD"},
    "HTTP/1.0": {"http_version": "HTTP/1.0"},
    "unknown HTTP version": {"http_version": "HTTP/one"},
    "no Upgrade": {"upgrade": None},
    "Upgrade to another protocol": {"upgrade": "h2c"},
    "Upgrade with a near miss": {"upgrade": "websockets"},
    "no Connection": {"connection": None},
    "Connection without upgrade": {"connection": "keep-alive"},
    "no key": {"sec_websocket_key": None},
    "key not base64": {"sec_websocket_key": "not a base64 key!!!!!!!"},
    "key of 15 bytes": {"sec_websocket_key": "AAAAAAAAAAAAAAAAAAAA"},
    "key of 17 bytes": {"sec_websocket_key": "AAAAAAAAAAAAAAAAAAAAAAA="},
    "key without padding": {"sec_websocket_key": "dGhlIHNhbXBsZSBub25jZQ"},
    "two keys joined": {"sec_websocket_key": KEY + ", " + KEY},
    "non-ASCII key": {"sec_websocket_key": "dGhlIHNhbXBsZSBub25jZQ=é"},
    "no version": {"sec_websocket_version": None},
    "subprotocol not a token": {"sec_websocket_protocol": "chat, bad/name"},
}


@pytest.mark.parametrize("case", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_malformed_handshake_gets_400(case):
    assert status_of(**case) == 400


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8"])
def test_other_version_gets_426_naming_version_13(version):
    with pytest.raises(HandshakeError) as caught:
        check_handshake("GET", handshake_headers(sec_websocket_version=version), "HTTP/1.1")
    assert caught.value.status == 426
    assert ("Sec-WebSocket-Version", "13") in caught.value.headers
    assert ("Upgrade", "websocket") in caught.value.headers


def test_response_headers_for_the_101():
    assert response_headers(KEY) == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", ACCEPT),
    ]


def test_response_headers_name_the_chosen_subprotocol():
    assert response_headers(KEY, "chat")[-1] == ("Sec-WebSocket-Protocol", "chat")


def test_response_headers_refuse_a_subprotocol_that_is_not_a_token():
    with pytest.raises(ValueError):
        response_headers(KEY, "chat\r\nX-Injected: 1")


def test_headers_from_request_feed_check_handshake():
    fields = (
        (b"host", b"localhost"),
        (b"upgrade", b"websocket"),
        (b"connection", b"keep-alive, Upgrade"),
        (b"sec-websocket-key", KEY.encode()),
        (b"sec-websocket-version", b"13"),
        (b"sec-websocket-protocol", b"chat"),
        (b"sec-websocket-protocol", b"superchat"),  # repeated fields are one list
    )
    headers = headers_from_request(fields)
    assert headers == {
        "host": "localhost",
        "upgrade": "websocket",
        "connection": "keep-alive, Upgrade",
        "sec-websocket-key": KEY,
        "sec-websocket-version": "13",
        "sec-websocket-protocol": "chat, superchat",
    }
    result = check_handshake("GET", headers, "HTTP/1.1")
    assert result == (KEY, ["chat", "superchat"])
