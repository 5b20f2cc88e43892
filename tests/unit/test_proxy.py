"""Trusted proxies: who may forward, RFC 7239 Forwarded, X-Forwarded-*, and
request ids. Every forged header from an untrusted peer must vanish."""

from __future__ import annotations

import os
import re

import pytest

from wsgiserver.proxy import (
    FORWARDING_HEADERS,
    ORIGINAL_KEY,
    ProxyTrust,
    _parse_forwarded,
    apply_proxy_headers,
    request_id,
)


def environ_from(remote: str = "10.0.0.1", **headers: str) -> dict:
    """A minimal environ as wsgi.py builds it, from a peer at ``remote``."""
    environ = {
        "REMOTE_ADDR": remote,
        "REMOTE_PORT": "50000",
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "internal:8080",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
    }
    environ.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
    return environ


# -- ProxyTrust -------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "address", "expected"),
    [
        (["10.0.0.1"], "10.0.0.1", True),
        (["10.0.0.1"], "10.0.0.2", False),
        (["10.0.0.0/8"], "10.200.3.4", True),
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["::1"], "::1", True),
        (["2001:db8::/32"], "2001:db8:1::5", True),
        (["[::1]"], "::1", True),
        (["10.0.0.0/8"], "::ffff:10.1.2.3", True),
        (["*"], "203.0.113.9", True),
        (["*"], "", True),
        (["unix"], "", True),
        (["unix"], "127.0.0.1", False),
        (["127.0.0.1"], "", False),
        ([], "127.0.0.1", False),
        (["127.0.0.1"], "not-an-address", False),
        ([" 127.0.0.1 "], "127.0.0.1", True),
    ],
)
def test_trusts_matches_addresses_networks_and_unix(allowed, address, expected):
    assert ProxyTrust(allowed).trusts(address) is expected


@pytest.mark.parametrize("entry", ["10.0.0.256", "10.0.0.1/8", "proxy.example", "", "10.0.0.0/33"])
def test_bad_trust_entry_is_a_one_line_error_naming_it(entry):
    with pytest.raises(ValueError) as caught:
        ProxyTrust(["127.0.0.1", entry])
    message = str(caught.value)
    assert repr(entry) in message
    assert "\n" not in message


# -- untrusted peers --------------------------------------------------------


@pytest.mark.parametrize("trust", [None, ProxyTrust(["192.168.0.1"])])
def test_untrusted_peer_loses_every_forwarding_header(trust):
    environ = environ_from(
        forwarded="for=1.2.3.4;proto=https",
        x_forwarded_for="1.2.3.4",
        x_forwarded_proto="https",
        x_forwarded_host="evil.example",
        x_forwarded_port="443",
        x_real_ip="1.2.3.4",
        x_request_id="keep-me",
    )
    before = dict(environ)
    apply_proxy_headers(environ, trust)
    for key in FORWARDING_HEADERS:
        assert key not in environ
    assert environ["HTTP_X_REQUEST_ID"] == "keep-me"
    for key in ("REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTP_HOST", "SERVER_PORT"):
        assert environ[key] == before[key]
    assert ORIGINAL_KEY not in environ


def test_unix_peer_trusted_only_with_unix_entry():
    environ = environ_from(remote="", x_forwarded_for="1.2.3.4")
    apply_proxy_headers(environ, ProxyTrust(["unix"]))
    assert environ["REMOTE_ADDR"] == "1.2.3.4"


# -- Forwarded (RFC 7239) ----------------------------------------------------


TRUST = ProxyTrust(["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("header", "address", "port"),
    [
        ("for=192.0.2.60", "192.0.2.60", "50000"),
        ('for="192.0.2.60:4711"', "192.0.2.60", "4711"),
        ('For="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17", "4711"),
        ('for="[2001:DB8::1]"', "2001:db8::1", "50000"),
        ('for="192.0.2.60:_abc"', "192.0.2.60", "50000"),
        # The rightmost untrusted hop is the client; the left one is its claim.
        ("for=6.6.6.6, for=192.0.2.60, for=10.0.0.7", "192.0.2.60", "50000"),
        # Every hop trusted: the leftmost is the client.
        ("for=10.0.0.9, for=10.0.0.7", "10.0.0.9", "50000"),
        # Unknown and obfuscated hops are untrusted and name no address.
        ("for=192.0.2.60, for=unknown", "10.0.0.1", "50000"),
        ("for=192.0.2.60, for=_hidden", "10.0.0.1", "50000"),
        ("proto=https", "10.0.0.1", "50000"),
    ],
)
def test_forwarded_for_picks_the_rightmost_untrusted_hop(header, address, port):
    environ = environ_from(forwarded=header)
    apply_proxy_headers(environ, TRUST)
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == (address, port)


def test_forwarded_sets_scheme_host_and_port_from_the_chosen_element():
    environ = environ_from(
        forwarded='for=192.0.2.60;proto=https;host="example.com", '
                  "for=10.0.0.5;proto=http;host=inner",
        x_forwarded_for="6.6.6.6",
        x_forwarded_proto="http",
    )
    apply_proxy_headers(environ, TRUST)
    assert environ["REMOTE_ADDR"] == "192.0.2.60"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTP_HOST"] == "example.com"
    assert environ["SERVER_NAME"] == "example.com"
    assert environ["SERVER_PORT"] == "443"


def test_forwarded_host_with_port_and_ipv6_literal():
    environ = environ_from(forwarded='for=192.0.2.1;host="[2001:db8::1]:8443";proto=https')
    apply_proxy_headers(environ, TRUST)
    assert environ["HTTP_HOST"] == "[2001:db8::1]:8443"
    assert environ["SERVER_NAME"] == "2001:db8::1"
    assert environ["SERVER_PORT"] == "8443"


def test_forwarded_is_kept_for_the_app_and_originals_are_recorded():
    environ = environ_from(forwarded="for=192.0.2.60;proto=https")
    apply_proxy_headers(environ, TRUST)
    assert environ["HTTP_FORWARDED"] == "for=192.0.2.60;proto=https"
    assert environ[ORIGINAL_KEY]["REMOTE_ADDR"] == "10.0.0.1"
    assert environ[ORIGINAL_KEY]["wsgi.url_scheme"] == "http"
    assert environ[ORIGINAL_KEY]["SERVER_PORT"] == "8080"


@pytest.mark.parametrize(
    "header",
    [
        'for="192.0.2.60',  # unterminated quote
        "for=192.0.2.60;for=6.6.6.6",  # a name twice in one element
        "for 192.0.2.60",
        "for=[::1]",  # brackets must be quoted: not a token
        "=x",
    ],
)
def test_malformed_forwarded_is_ignored_and_x_forwarded_not_believed(header):
    environ = environ_from(forwarded=header, x_forwarded_for="6.6.6.6")
    apply_proxy_headers(environ, TRUST)
    assert environ["REMOTE_ADDR"] == "10.0.0.1"
    assert environ["wsgi.url_scheme"] == "http"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("for=a;proto=http", [{"for": "a", "proto": "http"}]),
        ('for="a,b";by=c, for=d', [{"for": "a,b", "by": "c"}, {"for": "d"}]),
        (r'for="a\"b"', [{"for": 'a"b'}]),
        ("for=a;", [{"for": "a"}]),
        ("for=a,,for=b", [{"for": "a"}, {"for": "b"}]),
        ("  FOR=a ; Proto=https ", [{"for": "a", "proto": "https"}]),
    ],
)
def test_forwarded_grammar(header, expected):
    assert _parse_forwarded(header) == expected


@pytest.mark.parametrize(
    ("element", "scheme", "host"),
    [
        ("for=1.2.3.4;proto=ftp", "http", "internal:8080"),
        ('for=1.2.3.4;host="bad host"', "http", "internal:8080"),
        ('for=1.2.3.4;host="a.example:99999"', "http", "internal:8080"),
        ('for=1.2.3.4;host="[not-v6]"', "http", "internal:8080"),
        ("for=1.2.3.4;proto=HTTPS", "https", "internal:8080"),
    ],
)
def test_invalid_forwarded_values_are_ignored(element, scheme, host):
    environ = environ_from(forwarded=element)
    apply_proxy_headers(environ, TRUST)
    assert environ["REMOTE_ADDR"] == "1.2.3.4"
    assert (environ["wsgi.url_scheme"], environ["HTTP_HOST"]) == (scheme, host)


def test_proto_alone_keeps_host_and_takes_port_from_it():
    environ = environ_from(forwarded="for=1.2.3.4;proto=https")
    apply_proxy_headers(environ, TRUST)
    assert environ["HTTP_HOST"] == "internal:8080"
    assert environ["SERVER_PORT"] == "8080"


# -- X-Forwarded-* -----------------------------------------------------------


@pytest.mark.parametrize(
    ("chain", "address"),
    [
        ("192.0.2.60", "192.0.2.60"),
        ("6.6.6.6, 192.0.2.60", "192.0.2.60"),
        ("6.6.6.6, 192.0.2.60, 10.1.1.1", "192.0.2.60"),
        ("10.9.9.9, 10.1.1.1", "10.9.9.9"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:1234", "2001:db8::1"),
        ("192.0.2.60:1234", "192.0.2.60"),
        ("6.6.6.6, garbage", "10.0.0.1"),
        ("", "10.0.0.1"),
    ],
)
def test_x_forwarded_for_walks_from_the_right(chain, address):
    environ = environ_from(x_forwarded_for=chain)
    apply_proxy_headers(environ, TRUST)
    assert environ["REMOTE_ADDR"] == address


def test_x_forwarded_for_port_sets_remote_port():
    environ = environ_from(x_forwarded_for="192.0.2.60:1234")
    apply_proxy_headers(environ, TRUST)
    assert environ["REMOTE_PORT"] == "1234"


def test_x_forwarded_proto_host_port():
    environ = environ_from(
        x_forwarded_for="192.0.2.60",
        x_forwarded_proto="https",
        x_forwarded_host="shop.example",
        x_forwarded_port="8443",
    )
    apply_proxy_headers(environ, TRUST)
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTP_HOST"] == "shop.example"
    assert environ["SERVER_NAME"] == "shop.example"
    assert environ["SERVER_PORT"] == "8443"


def test_x_forwarded_lists_align_with_the_chosen_hop():
    # The client forged "https"; the trusted proxy appended what it saw.
    environ = environ_from(x_forwarded_for="6.6.6.6, 192.0.2.60", x_forwarded_proto="https, http")
    apply_proxy_headers(environ, TRUST)
    assert environ["wsgi.url_scheme"] == "http"
    # Two proxies appending: the outer one's word describes the client.
    environ = environ_from(x_forwarded_for="192.0.2.60, 10.0.0.5", x_forwarded_proto="https, http")
    apply_proxy_headers(environ, TRUST)
    assert environ["wsgi.url_scheme"] == "https"


def test_x_forwarded_proto_without_port_uses_scheme_default():
    environ = environ_from(x_forwarded_proto="https", x_forwarded_host="shop.example")
    apply_proxy_headers(environ, TRUST)
    assert environ["REMOTE_ADDR"] == "10.0.0.1"
    assert environ["SERVER_PORT"] == "443"


@pytest.mark.parametrize("port", ["0", "65536", "abc", "-1", ""])
def test_invalid_x_forwarded_port_is_ignored(port):
    environ = environ_from(x_forwarded_port=port)
    apply_proxy_headers(environ, TRUST)
    assert environ["SERVER_PORT"] == "8080"


def test_nothing_forwarded_changes_nothing():
    environ = environ_from()
    before = dict(environ)
    apply_proxy_headers(environ, TRUST)
    assert environ.pop(ORIGINAL_KEY) == {key: before[key] for key in (
        "REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME",
        "SERVER_PORT")}
    assert environ == before


# -- request ids -------------------------------------------------------------


def test_trusted_safe_request_id_is_kept():
    assert request_id({"HTTP_X_REQUEST_ID": "abc-123.x:y_z"}, trusted=True) == "abc-123.x:y_z"


@pytest.mark.parametrize(
    ("value", "trusted"),
    [
        ("abc", False),
        ("", True),
        ("a" * 129, True),
        ("has space", True),
        ('quote"', True),
        ("line\nbreak", True),
    ],
)
def test_untrusted_or_unsafe_request_id_is_replaced(value, trusted):
    new = request_id({"HTTP_X_REQUEST_ID": value}, trusted=trusted)
    assert new != value
    assert re.fullmatch(r"[0-9a-f]{32}", new)


def test_missing_request_id_gets_a_fresh_one_each_time():
    assert request_id({}, trusted=True) != request_id({}, trusted=True)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this system")
def test_a_forked_child_draws_its_own_request_ids():
    parent = request_id({}, trusted=False)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once
        try:
            os.write(writer, request_id({}, trusted=False).encode())
        finally:
            os._exit(0)
    os.close(writer)
    try:
        child = os.read(reader, 64).decode()
    finally:
        os.close(reader)
        os.waitpid(pid, 0)
    assert len(child) == len(parent) == 32
    assert child[:16] != parent[:16]  # another prefix, not the parent's next count
