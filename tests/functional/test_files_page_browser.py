"""The /files/ page in headless Chromium on the real server: upload through
the form, drop a file on the page, download it and compare the bytes, delete
it (confirming the dialog), and a form posted from another site refused.

Chromium is driven over the DevTools protocol (tests/functional/browser.py);
skipped, saying how to install it, when there is none. A screenshot of the
page is saved as ``files-page.png`` in the test's temporary directory; set
FILES_PAGE_SCREENSHOT=path to also copy it there (docs/files-page.png is made so).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from microapp import create_app
from tests.functional.browser import STEP_SECONDS, Page

# Binary bytes with line breaks and dashes, as a multipart body would hold them.
CONTENT = os.urandom(200_000) + b"\r\n--\r\n--boundary\r\n" + bytes(range(256))
ROWS = "Array.from(document.querySelectorAll('#files tbody a'), a => a.textContent)"


class FilesPage(Page):
    """The /files/ page: its rows, and what a person does on it."""

    def describe(self) -> str:
        return f"rows: {self.rows()}, status: {self.status()!r}"

    def rows(self) -> list[str]:
        try:
            return self.evaluate(ROWS) or []
        except RuntimeError:
            return []

    def status(self) -> str | None:
        try:
            return self.evaluate("document.getElementById('status')?.textContent")
        except RuntimeError:
            return None

    def wait_for_rows(self, expected: list[str], what: str) -> None:
        wanted = json.dumps(expected, separators=(",", ":"))  # as JSON.stringify writes it
        self.wait_for(f"JSON.stringify({ROWS}) === {json.dumps(wanted)}", what)

    def choose_file_and_upload(self, path: Path) -> None:
        """Pick ``path`` in the file input, as the file chooser would, and click Upload."""
        found = self.call("Runtime.evaluate", expression="document.getElementById('file-input')")
        self.call("DOM.setFileInputFiles", files=[str(path)],
                  objectId=found["result"]["objectId"])
        self.evaluate("document.querySelector('#upload button[type=submit]').click()")

    def drop_file(self, path: Path) -> None:
        """Drag ``path`` from outside the browser and drop it on the page."""
        data = {"items": [], "files": [str(path)], "dragOperationsMask": 1}
        for kind in ("dragEnter", "dragOver", "drop"):
            self.call("Input.dispatchDragEvent", type=kind, x=300, y=300, data=data)

    def click_delete_and_confirm(self, name: str) -> None:
        """Click the row's Delete button and accept the confirm() it opens
        (handling a dialog fails while none is open)."""
        self.call("Page.enable")
        selector = json.dumps(f'button.delete[data-name="{name}"]')
        # Clicked from a timer, so evaluate returns before the dialog blocks the page.
        self.evaluate(f"setTimeout(() => document.querySelector({selector}).click(), 0)")
        deadline = time.monotonic() + STEP_SECONDS
        while True:
            try:
                self.call("Page.handleJavaScriptDialog", accept=True)
                return
            except RuntimeError:  # no dialog yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@pytest.fixture
def served(live_server, tmp_path):
    """(url of /files/, directory) for the bundled app on the real server."""
    directory = tmp_path / "files"
    directory.mkdir()
    server = live_server(create_app(str(directory)))
    host, port = server.address
    return f"http://{host}:{port}/files/", directory


def wait_for_file(path: Path, size: int) -> bytes:
    """The file's bytes once a download has written all of them (bounded)."""
    deadline = time.monotonic() + STEP_SECONDS
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size == size:
            return path.read_bytes()
        time.sleep(0.05)
    pytest.fail(f"{path.name} was not downloaded within {STEP_SECONDS}s: "
                f"{sorted(os.listdir(path.parent))}")


def test_a_person_uploads_downloads_and_deletes_a_file(browser, served, tmp_path):
    url, directory = served
    (directory / "<img src=x onerror=alert(1)>").write_bytes(b"hostile name")
    local = tmp_path / "report.bin"
    local.write_bytes(CONTENT)
    page = FilesPage(browser, url)
    page.wait_for_rows(["<img src=x onerror=alert(1)>"], "the page lists the directory")
    assert page.evaluate("document.querySelectorAll('img').length") == 0

    page.choose_file_and_upload(local)
    page.wait_for_rows(["<img src=x onerror=alert(1)>", "report.bin"], "the upload is listed")
    assert (directory / "report.bin").read_bytes() == CONTENT

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads),
                 browserContextId=page.context)
    page.evaluate("document.querySelector('a[download=\"report.bin\"]').click()")
    assert wait_for_file(downloads / "report.bin", len(CONTENT)) == CONTENT

    screenshot = page.screenshot(tmp_path / "files-page.png", width=900, height=340)
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    if os.environ.get("FILES_PAGE_SCREENSHOT"):
        shutil.copyfile(screenshot, os.environ["FILES_PAGE_SCREENSHOT"])

    page.click_delete_and_confirm("report.bin")
    page.wait_for_rows(["<img src=x onerror=alert(1)>"], "the deleted file is gone")
    assert sorted(os.listdir(directory)) == ["<img src=x onerror=alert(1)>"]


def test_a_file_dropped_on_the_page_is_uploaded(browser, served, tmp_path):
    url, directory = served
    local = tmp_path / "dropped.bin"
    local.write_bytes(CONTENT)
    page = FilesPage(browser, url)
    page.wait_for("document.getElementById('upload')", "the page loaded")
    page.drop_file(local)
    page.wait_for_rows(["dropped.bin"], "the dropped file is listed")
    assert (directory / "dropped.bin").read_bytes() == CONTENT


def forging_site(target: str):
    """Another site's page that posts a form with a file to ``target`` when opened."""
    html = f"""<!DOCTYPE html><title>elsewhere</title><p id="state">posting</p><script>
    const data = new FormData();
    data.append("file", new File(["forged"], "forged.txt"));
    // A form post needs no CORS preflight: the browser sends it as it is.
    fetch({json.dumps(target)}, {{method: "POST", mode: "no-cors", body: data}})
      .then(() => {{ document.getElementById("state").textContent = "sent"; }},
            (error) => {{ document.getElementById("state").textContent = "failed " + error; }});
    </script>""".encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html"),
                                  ("Content-Length", str(len(html)))])
        return [html]

    return app


class Statuses:
    """Wraps an app and records each request's method and status."""

    def __init__(self, app) -> None:
        self.app, self.seen = app, []

    def __call__(self, environ, start_response):
        def start(status, headers, exc_info=None):
            self.seen.append((environ["REQUEST_METHOD"], int(status.split()[0])))
            return start_response(status, headers, exc_info)
        return self.app(environ, start)


def test_a_form_posted_from_another_site_is_refused(browser, live_server, tmp_path):
    directory = tmp_path / "files"
    directory.mkdir()
    files_app = Statuses(create_app(str(directory)))
    host, port = live_server(files_app).address
    _, other_port = live_server(forging_site(f"http://{host}:{port}/files/")).address
    page = FilesPage(browser, f"http://localhost:{other_port}/")  # another site
    assert page.wait_for("document.getElementById('state').textContent !== 'posting' && "
                         "document.getElementById('state').textContent",
                         "the other site posted its form") == "sent"
    assert files_app.seen == [("POST", 403)]
    assert os.listdir(directory) == []
