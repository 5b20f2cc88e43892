"""Launch cheroot's WSGI server on an app (cheroot has no CLI for a WSGI app).

    python -m bench.serve_cheroot --port 8080 --threads 8 --app bench.apps:app
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from cheroot import wsgi


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--backlog", type=int, default=2048)
    parser.add_argument("--timeout", type=int, default=30)
    parser.add_argument("--app", default="bench.apps:app", help="module:attribute")
    args = parser.parse_args(argv)
    module, _, name = args.app.partition(":")
    app = getattr(importlib.import_module(module), name)
    server = wsgi.Server((args.host, args.port), app, numthreads=args.threads,
                         request_queue_size=args.backlog, timeout=args.timeout)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.safe_start()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
