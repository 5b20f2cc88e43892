"""Applications the CLI tests load by name."""

NOT_CALLABLE = 42


def create_app():
    """A factory: the app answers with the directory option."""

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ.get("wsgiserver.directory", "").encode()]

    return app


def broken_factory():
    """A factory that fails."""
    raise RuntimeError("cannot build")


def pid_app(environ, start_response):
    """Answers with the serving process's id and wsgi.multiprocess."""
    import os

    body = f"{os.getpid()} {environ['wsgi.multiprocess']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
