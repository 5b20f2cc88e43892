"""The /files/ page in headless Chromium on the real server: upload through
the form, drop a file on the page, download it and compare the bytes, delete
it (confirming the dialog), and a form posted from another site refused.

Chromium is driven over the DevTools protocol (tests/functional/browser.py);
skipped, saying how to install it, when there is none. Screenshots are saved
in each test's temporary directory; FILES_PAGE_SCREENSHOTS=DIR also copies the
desktop-light and phone-dark ones there (the README's, in docs/, are made so).
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


# -- at desktop and phone sizes, light and dark (issue 25) ------------------------

VIEWS = {
    "desktop-light": (1000, 640, False, "light"),
    "desktop-dark": (1000, 640, False, "dark"),
    "phone-light": (390, 844, True, "light"),
    "phone-dark": (390, 844, True, "dark"),
}
VISIBLE_ROWS = ("Array.from(document.querySelectorAll('#files tbody tr'))"
                ".filter(row => !row.hidden).map(row => row.dataset.name)")
# WCAG 2 contrast of an element's text colour against the page's canvas.
CONTRAST = """(() => {
  const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const probe = document.createElement("div");
  probe.style.background = "Canvas";
  document.body.append(probe);
  const canvas = rgb(getComputedStyle(probe).backgroundColor);
  probe.remove();
  const light = ([r, g, b]) => [r, g, b].map((v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const text = rgb(getComputedStyle(document.querySelector(SELECTOR)).color);
  const [a, b] = [light(text), light(canvas)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
})()"""


def view(page: Page, name: str) -> None:
    width, height, mobile, scheme = VIEWS[name]
    page.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
              deviceScaleFactor=2 if mobile else 1, mobile=mobile)
    page.call("Emulation.setEmulatedMedia",
              features=[{"name": "prefers-color-scheme", "value": scheme}])


def answer_confirms(page: Page, answer: bool) -> None:
    """The page's confirm() answers ``answer`` and remembers what it asked."""
    page.evaluate(f"window.asked = []; window.confirm = (text) => "
                  f"{{ window.asked.push(text); return {json.dumps(answer)}; }}")


def choose_and_upload(page: Page, paths: list[Path]) -> None:
    found = page.call("Runtime.evaluate", expression="document.getElementById('file-input')")
    page.call("DOM.setFileInputFiles", files=[str(path) for path in paths],
              objectId=found["result"]["objectId"])
    page.evaluate("document.querySelector('#upload button[type=submit]').click()")


def click_heading(page: Page, key: str) -> str:
    page.evaluate(f"document.querySelector('th[data-key={key}] button').click()")
    return page.evaluate(f"document.querySelector('th[data-key={key}]').getAttribute('aria-sort')")


def filled_directory(directory: Path) -> dict[str, tuple[int, int]]:
    """Files of different sizes and ages: {name: (size, modified)}."""
    files = {"README.md": 900, "notes.txt": 12, "photo-2024-05-01.jpg": 150_000,
             "report 10.pdf": 40_000, "report 9.pdf": 30_000, "data.csv": 5_000,
             "zeta.bin": 1, "Alpha.txt": 300}
    made = {}
    for age, (name, size) in enumerate(sorted(files.items())):
        path = directory / name
        path.write_bytes(b"x" * size)
        moment = 1_700_000_000 + age * 3600 * 7 % 50_000
        os.utime(path, (moment, moment))
        made[name] = (size, moment)
    return made


@pytest.mark.parametrize("name", VIEWS)
def test_the_page_at_each_size_and_scheme(browser, served, tmp_path, name):
    url, directory = served
    made = filled_directory(directory)
    page = FilesPage(browser, url)
    view(page, name)
    page.wait_for("document.getElementById('filter') && !document.getElementById('filter').hidden",
                  "the script set up the filter")
    # Names as people sort them (case aside, "report 9" before "report 10"),
    # where the server sends them in code point order.
    human = ["Alpha.txt", "data.csv", "notes.txt", "photo-2024-05-01.jpg", "README.md",
             "report 9.pdf", "report 10.pdf", "zeta.bin"]
    assert page.evaluate(VISIBLE_ROWS) == human
    assert page.evaluate("document.querySelector('th[data-key=name]')"
                         ".getAttribute('aria-sort')") == "ascending"
    screenshot = page.screenshot(tmp_path / f"files-page-{name}.png", *VIEWS[name][:2]) \
        if not VIEWS[name][2] else _phone_screenshot(page, tmp_path / f"files-page-{name}.png")
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    if os.environ.get("FILES_PAGE_SCREENSHOTS") and name in ("desktop-light", "phone-dark"):
        shutil.copyfile(screenshot, Path(os.environ["FILES_PAGE_SCREENSHOTS"]) / screenshot.name)


    # 4: sort by clicking the headings, and filter, all in the page.
    assert click_heading(page, "size") == "descending"
    assert page.evaluate(VISIBLE_ROWS) == sorted(made, key=lambda n: (-made[n][0], n))
    assert click_heading(page, "size") == "ascending"
    assert page.evaluate(VISIBLE_ROWS) == sorted(made, key=lambda n: (made[n][0], n))
    assert click_heading(page, "modified") == "descending"
    assert page.evaluate(VISIBLE_ROWS)[0] == max(made, key=lambda n: made[n][1])
    assert click_heading(page, "name") == "ascending"
    assert page.evaluate(VISIBLE_ROWS) == human
    assert click_heading(page, "name") == "descending"
    assert page.evaluate(VISIBLE_ROWS) == human[::-1]
    page.evaluate("{ const f = document.getElementById('filter'); f.value = 'REPORT';"
                  "f.dispatchEvent(new Event('input')) }")
    assert page.evaluate(VISIBLE_ROWS) == ["report 10.pdf", "report 9.pdf"]  # still Z to A
    page.evaluate("{ const f = document.getElementById('filter'); f.value = 'nothing-like-it';"
                  "f.dispatchEvent(new Event('input')) }")
    assert page.evaluate(VISIBLE_ROWS) == []
    assert page.evaluate("!document.getElementById('no-match').hidden")
    page.evaluate("{ const f = document.getElementById('filter'); f.value = '';"
                  "f.dispatchEvent(new Event('input')) }")

    # 3: nothing wider than the screen; sizes and dates on one line; links
    # readable (WCAG AA 4.5:1) in either scheme.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate("Array.from(document.querySelectorAll('#files button, #files td'))"
                         ".every(item => item.getBoundingClientRect().right <= innerWidth)")
    # Each size and date on one line: all its text's boxes share one top.
    assert page.evaluate("Array.from(document.querySelectorAll('td.size, td.when')).every("
                         "cell => { const range = document.createRange();"
                         " range.selectNodeContents(cell);"
                         " return new Set(Array.from(range.getClientRects(),"
                         " box => Math.round(box.top))).size === 1; })")
    assert page.evaluate(CONTRAST.replace("SELECTOR", json.dumps("#files tbody a"))) >= 4.5
    assert page.evaluate(CONTRAST.replace("SELECTOR", json.dumps("body"))) >= 4.5

    # 1: an upload over an existing name asks first, and says what happened.
    local = tmp_path / "upload"
    local.mkdir()
    (local / "README.md").write_bytes(b"new readme")
    answer_confirms(page, False)
    choose_and_upload(page, [local / "README.md"])
    page.wait_for("document.getElementById('status').textContent.includes('Kept')",
                  "the upload was declined")
    assert page.evaluate("window.asked") == ["README.md exists: replace it?"]
    assert page.status() == "Kept README.md as it was."
    assert (directory / "README.md").read_bytes() == b"x" * 900
    answer_confirms(page, True)
    choose_and_upload(page, [local / "README.md"])
    page.wait_for("document.getElementById('status').textContent === 'Replaced README.md.'",
                  "the replacement is reported after the reload")
    assert (directory / "README.md").read_bytes() == b"new readme"
    for new in ("one.txt", "two.txt", "three.txt"):
        (local / new).write_bytes(new.encode())
    choose_and_upload(page, [local / n for n in ("one.txt", "two.txt", "three.txt")])
    page.wait_for("document.getElementById('status').textContent === 'Uploaded 3 files.'",
                  "three new files are reported")
    assert {"one.txt", "two.txt", "three.txt"} <= set(os.listdir(directory))


def _phone_screenshot(page: Page, path: Path) -> Path:
    """The page as the phone view shows it (the emulated metrics kept)."""
    import base64

    data = page.call("Page.captureScreenshot", format="png")["data"]
    path.write_bytes(base64.b64decode(data))
    return path


def test_without_javascript_the_list_is_served_sorted_by_name(browser, served):
    url, directory = served
    made = filled_directory(directory)
    page = FilesPage(browser, "about:blank")
    page.call("Emulation.setScriptExecutionDisabled", value=True)
    page.call("Page.navigate", url=url)
    # Scripts are off for the page, not for DevTools' own evaluation.
    page.wait_for("document.querySelectorAll('#files tbody tr').length === 8", "the list")
    assert page.evaluate(VISIBLE_ROWS) == sorted(made)
    assert page.evaluate("document.getElementById('filter').hidden")
    assert page.evaluate("document.querySelectorAll('th button').length") == 0


def test_a_directory_the_server_may_not_write_is_said_in_one_sentence(browser, served, tmp_path,
                                                                      monkeypatch):
    import errno
    import tempfile

    url, directory = served

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # root writes anywhere: make it refuse
    local = tmp_path / "new.txt"
    local.write_bytes(b"new")
    page = FilesPage(browser, url)
    page.wait_for("document.getElementById('upload')", "the page loaded")
    choose_and_upload(page, [local])
    page.wait_for("document.getElementById('status').textContent.includes('failed')",
                  "the refusal is shown")
    assert page.status() == ("Uploading new.txt failed: the server may not write to its files "
                             "directory.")
    assert os.listdir(directory) == []


@pytest.mark.parametrize("name", VIEWS)
def test_refusals_are_one_sentence_at_each_size_and_scheme(browser, live_server, tmp_path,
                                                           monkeypatch, name):
    import errno
    import tempfile

    directory = tmp_path / "files"
    directory.mkdir()
    host, port = live_server(create_app(str(directory), max_upload_bytes=1000)).address
    page = FilesPage(browser, f"http://{host}:{port}/files/")
    view(page, name)
    page.wait_for("document.getElementById('upload')", "the page loaded")
    local = tmp_path / "upload"
    local.mkdir()
    (local / "big.bin").write_bytes(b"b" * 5000)
    (local / "small.txt").write_bytes(b"s")

    # 2: over the limit, the limit said in words a person reads.
    choose_and_upload(page, [local / "big.bin"])
    page.wait_for("document.getElementById('status').textContent.includes('larger')",
                  "the refusal is shown")
    assert page.status() == "big.bin is larger than the server accepts (1.0 kB)."
    # 5: a directory the server may not write (made to refuse: root writes anywhere).
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    choose_and_upload(page, [local / "small.txt"])
    page.wait_for("document.getElementById('status').textContent.includes('may not')",
                  "the refusal is shown")
    assert page.status() == ("Uploading small.txt failed: the server may not write to its "
                             "files directory.")
    # The sentence is on the screen, whole, and readable.
    assert page.evaluate("(() => { const box = document.getElementById('status')"
                         ".getBoundingClientRect(); return box.left >= 0 && "
                         "box.right <= innerWidth && box.height > 0; })()")
    assert page.evaluate(CONTRAST.replace("SELECTOR", json.dumps("#status"))) >= 4.5
    assert os.listdir(directory) == []
