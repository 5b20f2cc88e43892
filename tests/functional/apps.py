"""Tiny WSGI applications used as fixtures by the functional tests."""

from __future__ import annotations


def hello_app(environ, start_response):
    """13 bytes with a Content-Length."""
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [body]


def echo_body_app(environ, start_response):
    """Answers with the request body it read."""
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def streaming_app(chunks):
    """Yields ``chunks`` with no Content-Length."""

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield from chunks

    return app


def environ_app(*keys):
    """Answers with the given environ values joined by ``|``."""

    def app(environ, start_response):
        body = "|".join(str(environ.get(key)) for key in keys).encode("latin-1")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    return app


def raising_app(environ, start_response):
    """Fails before starting the response."""
    raise RuntimeError("boom")


def h2spec_app(environ, start_response):
    """What h2spec needs: every request read to its end and answered, with a
    body of at least 5 bytes on /env (case 6.9.2/2 is skipped otherwise)."""
    environ["wsgi.input"].read()
    body = b"Hello from h2spec's server\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def h2_memory_app(environ, start_response):
    """For the HTTP/2 memory tests: a POST's body read whole and counted; a
    GET of /big a 2 MiB body made in full (a fresh object per request)."""
    if environ["REQUEST_METHOD"] == "POST":
        body = b"%d" % len(environ["wsgi.input"].read())
    elif environ["PATH_INFO"] == "/big":
        body = b"x" * (2 << 20)
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]
