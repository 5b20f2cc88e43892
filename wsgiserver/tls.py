"""TLS: a server-side ``ssl.SSLContext`` from certificate and key files.

Owns the TLS policy (versions, ALPN, client certificates) and turning file
and key problems into one-line errors. Knows no sockets, connections or
configuration object: the server wraps its sockets with the context.
"""

from __future__ import annotations

import ssl

__all__ = ["CLIENT_CERT_MODES", "make_server_context"]

CLIENT_CERT_MODES = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def make_server_context(certfile: str, keyfile: str | None = None, ca_certs: str | None = None,
                        client_certs: str = "none", http2: bool = False) -> ssl.SSLContext:
    """A server context: TLS 1.2 or newer, ALPN ``http/1.1`` (``h2`` first
    with ``http2``).

    ``keyfile`` may be left out when ``certfile`` holds the key too.
    ``client_certs`` is "none", "optional" or "required"; the last two need
    ``ca_certs``, the CAs whose client certificates are accepted.
    """
    if client_certs not in CLIENT_CERT_MODES:
        raise ValueError(f"client certificates must be none, optional or required, "
                         f"not {client_certs!r}")
    if client_certs != "none" and ca_certs is None:
        raise ValueError(f"client certificates {client_certs} need a CA file to check them")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # RFC 8996 deprecates TLS 1.0 and 1.1; RFC 9325 section 3.1.1 asks for 1.2+.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # RFC 7301: the protocols we speak, preferred first. Without http2, a
    # client offering h2 alone gets no ALPN answer (Python's ssl does not
    # send the no_application_protocol alert).
    if http2:
        context.set_alpn_protocols(["h2", "http/1.1"])
        # RFC 9113 section 9.2.2: HTTP/2 over TLS 1.2 only with ephemeral key
        # exchange and an AEAD cipher (TLS 1.3's suites all qualify).
        context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20")
    else:
        context.set_alpn_protocols(["http/1.1"])
    _load_chain(context, certfile, keyfile)
    if ca_certs is not None:
        _load_cas(context, ca_certs)
    context.verify_mode = CLIENT_CERT_MODES[client_certs]
    return context


def _load_chain(context: ssl.SSLContext, certfile: str, keyfile: str | None) -> None:
    certificate = _read("certificate", certfile)
    if keyfile is not None:
        _read("key", keyfile)
    elif b"PRIVATE KEY-----" not in certificate:
        raise ValueError(f"certificate {certfile} holds no private key; give the key file too")

    def no_password() -> str:
        # Without this OpenSSL would prompt on the terminal for a passphrase.
        raise ValueError(f"key {keyfile or certfile} is encrypted; give an unencrypted key")

    try:
        context.load_cert_chain(certfile, keyfile, password=no_password)
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(f"certificate {certfile} and key {keyfile or certfile} "
                             "do not match") from None
        raise ValueError(f"cannot load certificate {certfile}"
                         f"{' with key ' + keyfile if keyfile else ''}: "
                         f"{_reason(error)}") from None


def _load_cas(context: ssl.SSLContext, ca_certs: str) -> None:
    _read("CA file", ca_certs)
    try:
        context.load_verify_locations(cafile=ca_certs)
    except ssl.SSLError as error:
        raise ValueError(f"cannot load CA file {ca_certs}: {_reason(error)}") from None


def _read(role: str, path: str) -> bytes:
    """Read the file ourselves: ssl's errors for a missing file are cryptic."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise ValueError(f"cannot read {role} {path}: {error.strerror}") from None


def _reason(error: ssl.SSLError) -> str:
    """OpenSSL's reason in words: ``NO_CERTIFICATE_OR_CRL_FOUND`` -> "no ... found"."""
    if error.reason:
        return error.reason.replace("_", " ").lower()
    if "PEM lib" in str(error):
        return "not a PEM certificate and its key"
    return str(error).splitlines()[0]
