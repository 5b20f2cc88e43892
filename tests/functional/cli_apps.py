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
