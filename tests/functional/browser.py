"""Headless Chromium for browser tests, driven over the DevTools protocol with
the ``websockets`` client, so no WebDriver is needed: only a Chromium binary
(Debian: ``apt-get install chromium``). The ``browser`` fixture (conftest.py)
skips a test, saying so, when there is none.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# No network beyond loopback: without these Chromium tries to reach Google's
# services, and waits on them.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
    "--no-default-browser-check", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
STARTUP_SECONDS = 30.0
STEP_SECONDS = 10.0


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"chromium not installed: none of {', '.join(CHROMIUM_NAMES)} on PATH "
                "(Debian: apt-get install chromium)")


class DevTools:
    """A minimal DevTools protocol client: one browser connection, commands
    answered in order, events ignored, every wait bounded."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict:
        """Send a command (to a page's ``session``) and return its result."""
        command_id = next(self._ids)
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + STEP_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer to {method} within {STEP_SECONDS}s")
            reply = json.loads(self._socket.recv(timeout=remaining))
            if reply.get("id") != command_id:
                continue  # an event, or an answer nobody waits for
            if "error" in reply:
                raise RuntimeError(f"{method} failed: {reply['error']}")
            return reply.get("result", {})


class Page:
    """One tab in its own browser context (its own cookies and storage)."""

    def __init__(self, devtools: DevTools, url: str) -> None:
        self.devtools = devtools
        self.context = devtools.call("Target.createBrowserContext")["browserContextId"]
        target = devtools.call("Target.createTarget", url=url, browserContextId=self.context)
        self.session = devtools.call("Target.attachToTarget", targetId=target["targetId"],
                                     flatten=True)["sessionId"]

    def call(self, method: str, **params: Any) -> dict:
        """A DevTools command for this page."""
        return self.devtools.call(method, self.session, **params)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str) -> Any:
        """Poll ``expression`` until it is truthy; fail after STEP_SECONDS."""
        deadline = time.monotonic() + STEP_SECONDS
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError:  # the page is still loading
                value = None
            if value:
                return value
            time.sleep(0.05)
        pytest.fail(f"{what}: not within {STEP_SECONDS}s; the page shows: {self.describe()}")

    def describe(self) -> str:
        """What the page shows, for a failure message."""
        try:
            return repr(self.evaluate("document.body ? document.body.innerText : ''"))[:2000]
        except RuntimeError as error:
            return f"(unreadable: {error})"

    def screenshot(self, path: Path, width: int = 1000, height: int = 640) -> Path:
        """A PNG of the page at ``width`` x ``height`` CSS pixels, saved to ``path``."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path


def devtools_url(profile: Path, process: subprocess.Popen) -> str:
    """The browser's DevTools endpoint, from the file Chromium writes once
    it listens (its first line is the port, the second the path)."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"chromium exited with {process.returncode} at startup")
        lines = port_file.read_text().split() if port_file.exists() else []
        if len(lines) >= 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.05)
    pytest.fail(f"chromium did not open its DevTools port within {STARTUP_SECONDS}s")


@contextlib.contextmanager
def launch(directory: Path) -> Iterator[DevTools]:
    """A headless Chromium on loopback with its profile in ``directory``, and a
    DevTools connection to it; the browser is closed (or killed) on exit."""
    sync_client = pytest.importorskip("websockets.sync.client")
    executable = find_chromium()
    profile = directory / "chromium-profile"
    profile.mkdir()
    process = subprocess.Popen(
        [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(directory)},
    )
    try:
        url = devtools_url(profile, process)
        with sync_client.connect(url, open_timeout=STEP_SECONDS, max_size=None) as socket:
            devtools = DevTools(socket)
            try:
                yield devtools
            finally:
                with contextlib.suppress(Exception):  # it may be gone; it is ended below
                    devtools.call("Browser.close")
    finally:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
