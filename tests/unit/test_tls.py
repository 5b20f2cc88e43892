"""TLS contexts: real handshakes over a socket pair with certificates made at
test time by trustme; old versions refused, client certificates enforced,
and every file problem a one-line ValueError."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass

import pytest

from wsgiserver.tls import make_server_context

trustme = pytest.importorskip("trustme")


@dataclass
class Files:
    cert: str
    key: str
    both: str
    ca: str
    client: str
    other_key: str


@pytest.fixture(scope="module")
def authority():
    return trustme.CA()


@pytest.fixture
def files(authority, tmp_path) -> Files:
    server = authority.issue_cert("127.0.0.1", "localhost")
    client = authority.issue_cert("client@example.com")
    other = trustme.CA().issue_cert("localhost")
    paths = Files(*(str(tmp_path / name) for name in (
        "cert.pem", "key.pem", "both.pem", "ca.pem", "client.pem", "other-key.pem")))
    server.cert_chain_pems[0].write_to_path(paths.cert)
    server.private_key_pem.write_to_path(paths.key)
    server.private_key_and_cert_chain_pem.write_to_path(paths.both)
    authority.cert_pem.write_to_path(paths.ca)
    client.private_key_and_cert_chain_pem.write_to_path(paths.client)
    other.private_key_pem.write_to_path(paths.other_key)
    return paths


def client_context(authority, certificate: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    authority.configure_trust(context)
    context.set_alpn_protocols(["http/1.1"])
    if certificate is not None:
        context.load_cert_chain(certificate)
    return context


@dataclass
class Outcome:
    server: dict | Exception
    client: bytes | Exception


def handshake(server_context: ssl.SSLContext, client: ssl.SSLContext) -> Outcome:
    """One TLS exchange over a socket pair; each side's result or error."""
    server_end, client_end = socket.socketpair()
    server_end.settimeout(10)
    client_end.settimeout(10)
    result: dict = {}

    def serve() -> None:
        try:
            with server_context.wrap_socket(server_end, server_side=True) as tls:
                result["server"] = {"version": tls.version(),
                                    "alpn": tls.selected_alpn_protocol(),
                                    "peer": tls.getpeercert()}
                tls.sendall(b"ok")
        except (OSError, ssl.SSLError) as error:
            result["server"] = error

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(client_end, server_hostname="127.0.0.1") as tls:
            received: bytes | Exception = tls.recv(2)
    except (OSError, ssl.SSLError) as error:
        received = error
    finally:
        client_end.close()
        thread.join(timeout=20)
        server_end.close()
    assert not thread.is_alive()
    return Outcome(result["server"], received)


def test_handshake_with_separate_key_file(authority, files):
    outcome = handshake(make_server_context(files.cert, files.key), client_context(authority))
    assert outcome.client == b"ok"
    assert outcome.server["version"] in ("TLSv1.2", "TLSv1.3")
    assert outcome.server["alpn"] == "http/1.1"
    assert outcome.server["peer"] is None


def test_client_offering_only_h2_gets_no_alpn_answer(authority, files):
    client = client_context(authority)
    client.set_alpn_protocols(["h2"])
    outcome = handshake(make_server_context(files.cert, files.key), client)
    assert outcome.client == b"ok"
    assert outcome.server["alpn"] is None


def test_handshake_with_key_in_certificate_file(authority, files):
    assert handshake(make_server_context(files.both), client_context(authority)).client == b"ok"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_1_1_client_is_refused(authority, files):
    client = client_context(authority)
    # Let this client's OpenSSL offer TLS 1.1, so the refusal is the server's.
    client.set_ciphers("DEFAULT:@SECLEVEL=0")
    client.minimum_version = ssl.TLSVersion.TLSv1_1
    client.maximum_version = ssl.TLSVersion.TLSv1_1
    outcome = handshake(make_server_context(files.cert, files.key), client)
    assert isinstance(outcome.server, ssl.SSLError)
    assert outcome.server.reason == "UNSUPPORTED_PROTOCOL"
    assert isinstance(outcome.client, ssl.SSLError)


def test_context_minimum_is_tls_1_2(files):
    context = make_server_context(files.cert, files.key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE


def test_required_client_certificate_is_enforced(authority, files):
    server = make_server_context(files.cert, files.key, ca_certs=files.ca,
                                 client_certs="required")
    refused = handshake(server, client_context(authority))
    assert isinstance(refused.server, ssl.SSLError)
    assert refused.server.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    assert isinstance(refused.client, OSError)  # an alert or a reset, by TLS version
    accepted = handshake(server, client_context(authority, files.client))
    assert accepted.client == b"ok"
    assert accepted.server["peer"]["subjectAltName"] == (("email", "client@example.com"),)


def test_client_certificate_from_another_ca_is_refused(files, tmp_path):
    stranger = trustme.CA().issue_cert("client@example.com")
    stranger.private_key_and_cert_chain_pem.write_to_path(tmp_path / "stranger.pem")
    server = make_server_context(files.cert, files.key, ca_certs=files.ca,
                                 client_certs="optional")
    trusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trusting.load_verify_locations(files.ca)
    trusting.load_cert_chain(str(tmp_path / "stranger.pem"))
    assert isinstance(handshake(server, trusting).server, ssl.SSLError)


def test_optional_client_certificate_may_be_absent(authority, files):
    server = make_server_context(files.cert, files.key, ca_certs=files.ca,
                                 client_certs="optional")
    outcome = handshake(server, client_context(authority))
    assert outcome.client == b"ok"
    assert not outcome.server["peer"]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (lambda f: (f.cert, f.other_key), "do not match"),
        (lambda f: (f.cert,), "holds no private key"),
        (lambda f: (f.cert + ".missing", f.key), "cannot read certificate"),
        (lambda f: (f.cert, f.key + ".missing"), "cannot read key"),
        (lambda f: (f.ca, f.key), "do not match"),
        (lambda f: (f.key, f.key), "cannot load certificate"),
        (lambda f: (f.cert, f.key, f.key), "cannot load CA file"),
        (lambda f: (f.cert, f.key, f.ca + ".missing"), "cannot read CA file"),
        (lambda f: (f.cert, f.key, None, "sometimes"), "none, optional or required"),
        (lambda f: (f.cert, f.key, None, "required"), "need a CA file"),
    ],
)
def test_file_problems_are_one_line_value_errors(files, arguments, says):
    with pytest.raises(ValueError) as caught:
        make_server_context(*arguments(files))
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_encrypted_key_is_refused_without_prompting(files, tmp_path):
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    with open(files.key, "rb") as file:
        key = serialization.load_pem_private_key(file.read(), password=None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(ValueError, match="is encrypted"):
        make_server_context(files.cert, str(encrypted))


def test_a_handshake_that_cannot_write_goes_back_to_the_poller_without_waiting():
    # A client that stops reading mid-handshake: our flight does not fit. The
    # transport says so (the poller then watches for room) instead of making
    # the leader's thread wait for it.
    from wsgiserver.clock import ManualClock
    from wsgiserver.transport import TlsTransport

    class FlightDoesNotFit:
        def __init__(self) -> None:
            self.calls = 0

        def do_handshake(self) -> None:
            self.calls += 1
            if self.calls == 1:
                raise ssl.SSLWantWriteError()
            raise ssl.SSLWantReadError()

    ours, theirs = socket.socketpair()
    try:
        transport = TlsTransport(ours, ("127.0.0.1", 1), ssl.create_default_context(),
                                 ManualClock())
        transport._tls = FlightDoesNotFit()  # type: ignore[assignment]
        assert transport.handshake() is False
        assert transport.handshake_writing is True
        assert transport._tls.calls == 1  # no second try before the poller says there is room
        assert transport.handshake() is False and transport.handshake_writing is False
    finally:
        ours.close()
        theirs.close()
