"""h2spec, the HTTP/2 conformance tester, against the real server: every case
over TLS (ALPN h2), over TLS in strict mode, and over h2c by prior knowledge.

h2spec is a Go binary, not a Python package: the test looks for it on PATH,
in $H2SPEC, or in ../shared/tools/ beside the checkout, and skips saying how
to get it otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.functional.conftest import ROOT, launch_cli
from tests.functional.tlsfiles import TLSFiles

pytest.importorskip("h2")


def h2spec_binary() -> str | None:
    for candidate in (os.environ.get("H2SPEC"), shutil.which("h2spec"),
                      str(ROOT.parent / "shared" / "tools" / "h2spec")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


H2SPEC = h2spec_binary()
pytestmark = pytest.mark.skipif(
    H2SPEC is None, reason="h2spec not found: build it from github.com/summerwind/h2spec "
    "(go build ./cmd/h2spec) and put it on PATH or in $H2SPEC")


def serve(*args: str) -> tuple[subprocess.Popen, int]:
    return launch_cli("tests.functional.apps:h2spec_app", "--threads", "8", "--log-level",
                      "error", *args, seconds=15, stdout=subprocess.DEVNULL)


def run_h2spec(port: int, *flags: str) -> str:
    assert H2SPEC is not None
    result = subprocess.run([H2SPEC, "-h", "127.0.0.1", "-p", str(port), "-o", "5",
                             "-P", "/env", *flags], capture_output=True, text=True, timeout=600)
    return result.stdout + result.stderr


def summary(output: str) -> tuple[int, int, int, int]:
    found = re.search(r"(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed", output)
    assert found, output[-2000:]
    total, passed, skipped, failed = (int(group) for group in found.groups())
    return total, passed, skipped, failed


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["tls", "tls-strict", "h2c"])
def test_h2spec_passes_every_case(tmp_path: Path, mode: str) -> None:
    if mode == "h2c":
        process, port = serve("--h2c-prior-knowledge", "--forwarded-allow-ips", "127.0.0.1")
        flags: tuple[str, ...] = ()
    else:
        tls = TLSFiles(tmp_path)
        process, port = serve("--http2", "--certfile", tls.certfile)
        flags = ("-t", "-k", "-S") if mode == "tls-strict" else ("-t", "-k")
    try:
        output = run_h2spec(port, *flags)
    finally:
        process.terminate()
        process.communicate(timeout=30)
    total, passed, skipped, failed = summary(output)
    failures = [line for line in output.splitlines() if "×" in line]
    assert failed == 0, "\n".join(failures) or output[-3000:]
    assert passed + skipped == total and skipped == 0
