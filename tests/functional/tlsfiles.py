"""A certificate authority, a server certificate for localhost/127.0.0.1 and
a client certificate, made by trustme for the TLS tests."""

from __future__ import annotations

import ssl
from pathlib import Path


class TLSFiles:
    def __init__(self, directory: Path) -> None:
        import trustme

        self.ca = trustme.CA()
        server_cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.certfile = str(directory / "server.pem")  # key and chain in one file
        server_cert.private_key_and_cert_chain_pem.write_to_path(self.certfile)
        self.ca_pem = str(directory / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_pem)
        self.client_cert = self.ca.issue_cert("client@example.org")

    def client_context(self, with_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if with_cert:
            self.client_cert.configure_cert(context)
        return context
