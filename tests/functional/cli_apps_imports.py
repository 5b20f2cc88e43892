"""An application that records which process imported it (--worker-import tests)."""

import os

if os.environ.get("HOOK_DIR"):
    open(os.path.join(os.environ["HOOK_DIR"], f"import-{os.getpid()}"), "w").close()


def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
