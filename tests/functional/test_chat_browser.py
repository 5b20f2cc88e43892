"""The chat example end to end in headless Chromium: two pages in separate
browser contexts type, send, and see each other's messages.

Chromium is driven over the DevTools protocol (tests/functional/browser.py);
skipped, saying how to install it, when there is none.
"""

from __future__ import annotations

from examples.chat import create_chat_app
from tests.functional.browser import Page


class ChatPage(Page):
    """The chat page: its message list, and typing as a user would."""

    def describe(self) -> str:
        return f"messages: {self.messages()}"

    def messages(self) -> list[str]:
        try:
            return self.evaluate(
                "Array.from(document.querySelectorAll('#messages li'), li => li.textContent)")
        except RuntimeError:
            return []

    def type_and_send(self, text: str) -> None:
        """Type into the message box as a user would, then click Send."""
        self.evaluate("document.getElementById('message').focus()")
        self.call("Input.insertText", text=text)
        self.evaluate("document.getElementById('send').click()")


def test_two_browser_pages_chat_with_each_other(live_server, browser):
    server = live_server(create_chat_app(), max_websockets=16)
    host, port = server.address
    page_url = f"http://{host}:{port}/"
    alice, bob = ChatPage(browser, page_url), ChatPage(browser, page_url)
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

    # Chromium offers permessage-deflate and the server takes it (RFC 7692); a
    # long message goes compressed both ways and arrives whole.
    extensions = alice.evaluate(
        "new Promise(resolve => { const ws = new WebSocket("
        "location.href.replace('http', 'ws') + 'ws'); ws.onopen = () => "
        "{ resolve(ws.extensions); ws.close(); }; })")
    assert extensions.startswith("permessage-deflate")
    long_text = "compressible " * 100
    bob.type_and_send(long_text)
    alice.wait_for("Array.from(document.querySelectorAll('#messages li'))"
                   f".some(li => li.textContent.endsWith({long_text!r}))",
                   "the long message arrived")
