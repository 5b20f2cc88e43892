"""The chat example end to end in headless Chromium: two pages in separate
browser contexts type, send, and see each other's messages.

Chromium is driven over the DevTools protocol with the ``websockets`` client
the other WebSocket tests use, so no WebDriver is needed: only a Chromium
binary (Debian: ``apt-get install chromium``). Skipped when there is none.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from examples.chat import create_chat_app

sync_client = pytest.importorskip("websockets.sync.client")

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
        context = devtools.call("Target.createBrowserContext")["browserContextId"]
        target = devtools.call("Target.createTarget", url=url, browserContextId=context)
        self.session = devtools.call("Target.attachToTarget", targetId=target["targetId"],
                                     flatten=True)["sessionId"]

    def evaluate(self, expression: str) -> Any:
        result = self.devtools.call("Runtime.evaluate", self.session, expression=expression,
                                    returnByValue=True, awaitPromise=True)
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
        pytest.fail(f"{what}: not within {STEP_SECONDS}s; messages: {self.messages()}")

    def messages(self) -> list[str]:
        try:
            return self.evaluate(
                "Array.from(document.querySelectorAll('#messages li'), li => li.textContent)")
        except RuntimeError:
            return []

    def type_and_send(self, text: str) -> None:
        """Type into the message box as a user would, then click Send."""
        self.evaluate("document.getElementById('message').focus()")
        self.devtools.call("Input.insertText", self.session, text=text)
        self.evaluate("document.getElementById('send').click()")


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


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium on loopback and a DevTools connection to it."""
    executable = find_chromium()
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    process = subprocess.Popen(
        [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    try:
        url = devtools_url(profile, process)
        with sync_client.connect(url, open_timeout=STEP_SECONDS, max_size=None) as socket:
            devtools = DevTools(socket)
            try:
                yield devtools
            finally:
                try:
                    devtools.call("Browser.close")
                except Exception:  # it may already be gone; the process is ended below
                    pass
    finally:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_two_browser_pages_chat_with_each_other(live_server, browser):
    server = live_server(create_chat_app(), max_websockets=16)
    host, port = server.address
    page_url = f"http://{host}:{port}/"
    alice, bob = Page(browser, page_url), Page(browser, page_url)
    for page in (alice, bob):
        page.wait_for("document.getElementById('status')?.textContent === 'connected'",
                      "the page's WebSocket opened")

    alice.type_and_send("hello from alice")
    for page in (bob, alice):
        page.wait_for("Array.from(document.querySelectorAll('#messages li'))"
                      ".some(li => li.textContent.endsWith(': hello from alice'))",
                      "alice's message arrived")
    assert alice.evaluate("document.getElementById('message').value") == ""

    bob.type_and_send("<b>hi</b> alice")  # shown as text, never as markup
    alice.wait_for("Array.from(document.querySelectorAll('#messages li'))"
                   ".some(li => li.textContent.endsWith(': <b>hi</b> alice'))",
                   "bob's message arrived")
    assert alice.evaluate("document.querySelectorAll('#messages b').length") == 0
