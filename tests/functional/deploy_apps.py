"""WSGI applications for the deployment tests (also served through the CLI)."""

from __future__ import annotations

import hashlib
import json
import os

# The environ values the deployment tests look at.
_REPORTED = ("REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME",
             "SERVER_PORT", "CONTENT_LENGTH", "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING",
             "wsgiserver.request_id", "wsgiserver.proxy.original")


def inspect_app(environ, start_response):
    """Answers with JSON describing the request: selected environ values, every
    HTTP_* header, the body's length and SHA-256, the process id.

    ``/missing`` answers 404 and ``/boom`` raises (a 500 from the server);
    every answer carries ``X-Custom: custom-value``.
    """
    path = environ.get("PATH_INFO", "/")
    if path == "/boom":
        raise RuntimeError("boom (the test asked for it)")
    body = environ["wsgi.input"].read()
    report = {key: environ.get(key) for key in _REPORTED}
    report["headers"] = {key: value for key, value in environ.items() if key.startswith("HTTP_")}
    report["ssl_keys"] = sorted(key for key in environ if "SSL" in key.upper())
    report["ssl"] = {key: value for key, value in environ.items() if key.startswith("SSL_")}
    report["body_length"] = len(body)
    report["body_sha256"] = hashlib.sha256(body).hexdigest()
    report["pid"] = os.getpid()
    data = json.dumps(report).encode()
    status = "404 Not Found" if path == "/missing" else "200 OK"
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data))),
                            ("X-Custom", "custom-value")])
    return [data]
