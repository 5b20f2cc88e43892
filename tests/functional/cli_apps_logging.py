"""An application that configures the root logger when imported, as Django does."""

import logging
import sys

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="ROOT %(name)s %(message)s")
logging.getLogger("myapp").info("application configured")


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
