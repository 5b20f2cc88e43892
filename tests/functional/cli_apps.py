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


def hang_app(environ, start_response):
    """/hang sleeps (a stuck application); anything else answers the pid."""
    if environ["PATH_INFO"] == "/hang":
        import time

        hang_here_for_the_test(time)
    return pid_app(environ, start_response)


def hang_here_for_the_test(time) -> None:
    """A name to find in the stack dump of a stuck worker."""
    time.sleep(30)


def slow_app(environ, start_response):
    """/slow takes 5 s; anything else answers at once."""
    if environ["PATH_INFO"] == "/slow":
        import time

        time.sleep(5)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def create_named(name, suffix=""):
    """A factory with arguments, as 'module:create_named("prod", suffix="!")' calls it."""

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{name}{suffix}".encode()]

    return app


def make_factory():
    """A factory whose result is another factory: no WSGI application."""
    return create_app


class ClassApp:
    """A class as the application: each request is an instance (iterable)."""

    def __init__(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        self.body = [b"class"]

    def __iter__(self):
        return iter(self.body)


def half_second_app(environ, start_response):
    """Every request takes half a second (a call downstream), then answers the pid."""
    import time

    time.sleep(0.5)
    return pid_app(environ, start_response)


def record_start():
    """--on-worker-start: a file named after the worker's pid, in $HOOK_DIR."""
    import os

    open(os.path.join(os.environ["HOOK_DIR"], f"start-{os.getpid()}"), "w").close()


def record_exit():
    """--on-worker-exit: likewise, once the worker has stopped."""
    import os

    open(os.path.join(os.environ["HOOK_DIR"], f"exit-{os.getpid()}"), "w").close()
