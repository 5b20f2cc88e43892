"""The file directory for people and for programs: an HTML page (listing,
upload form with drag-and-drop, delete buttons) and the same listing as JSON.

Owns the page's markup, style and script, and escaping everything it shows;
knows no disk and no request (it is given entries and the URL of /files/).
No build step and nothing external: the script and style are inline, and
the Content-Security-Policy allows exactly them, by hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from microapp.files import Entry, Listing
from microapp.response import Response

__all__ = ["HTML", "page", "listing_json"]

HTML = "text/html; charset=utf-8"

STYLE = """
:root { color-scheme: light dark; --line: #8884; --accent: #2563eb; --link: #1d4ed8; }
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 1rem; }
#upload { border: 2px dashed var(--line); border-radius: .75rem; padding: 1rem 1.25rem;
  display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; }
#upload.over { border-color: var(--accent); background: #2563eb14; }
#upload p { margin: 0; flex-basis: 100%; }
#status { color: #b45309; }
#status:empty { display: none; }
.summary { color: #888; font-weight: normal; font-size: 1rem; margin-left: .5rem; }
table { width: 100%; border-collapse: collapse; margin-top: 1.25rem; }
th, td { text-align: left; padding: .45rem .5rem; border-bottom: 1px solid var(--line); }
th { font-weight: 600; font-size: .85rem; text-transform: uppercase; letter-spacing: .04em; }
td.size, th.size { text-align: right; font-variant-numeric: tabular-nums; }
td.name { overflow-wrap: break-word; word-break: normal; }
td.size, td.when { white-space: nowrap; }
a { color: var(--link); }
button, input[type=file]::file-selector-button { font: inherit; padding: .3rem .8rem;
  border-radius: .4rem; cursor: pointer; border: 1px solid var(--line);
  background: transparent; color: inherit; }
button.primary, input[type=file]::file-selector-button { background: var(--accent);
  border-color: var(--accent); color: #fff; }
input[type=file]::file-selector-button { margin-right: .6rem; }
@media (prefers-color-scheme: dark) {
  /* Links #93c5fd on the dark background: about 9:1 (WCAG AA asks 4.5:1). */
  :root { --link: #93c5fd; --accent: #1d4ed8; }
  #status { color: #fbbf24; }
}
button.delete:hover { border-color: #dc2626; color: #dc2626; }
.empty { color: #888; }
"""

SCRIPT = """
"use strict";
const form = document.getElementById("upload");
const input = document.getElementById("file-input");
const status = document.getElementById("status");
const say = (text) => { status.textContent = text; };

function send(method, url, body) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(method, url);
    request.setRequestHeader("Accept", "application/json");
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) {
        say("Uploading\\u2026 " + Math.round(100 * event.loaded / event.total) + "%");
      }
    };
    request.onload = () => resolve(request);
    request.onerror = () => reject(new Error("the connection failed"));
    request.send(body);
  });
}

function bytesText(count) {
  const units = ["bytes", "kB", "MB", "GB", "TB"];
  let value = count, unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return (unit ? value.toFixed(value < 10 ? 1 : 0) : value) + " " + units[unit];
}

// One sentence a person understands: the server's reason without its status
// line ("413 Content Too Large: ..."), the limit in kB or MB when it gives one.
function reason(answer, what, subject) {
  const text = answer.responseText.trim().replace(/^\\d{3} [^:]*: /, "");
  const limit = text.match(/(\\d+) bytes/);
  if (answer.status === 413) {
    return subject + " larger than the server accepts" +
      (limit ? " (" + bytesText(Number(limit[1])) + ")." : ".");
  }
  return what + " failed: " + (text || answer.statusText) + ".";
}

async function act(what, method, url, body, subject) {
  try {
    const answer = await send(method, url, body);
    if (answer.status >= 200 && answer.status < 300) {
      location.reload();
    } else {
      say(reason(answer, what, subject));
    }
  } catch (error) {
    say(what + " failed: " + error.message + ".");
  }
}

function upload(files) {
  if (!files || files.length === 0) { say("Choose or drop a file first."); return; }
  const data = new FormData();
  for (const file of files) { data.append("file", file, file.name); }
  say("Uploading " + files.length + (files.length === 1 ? " file" : " files") + "\\u2026");
  const subject = files.length === 1 ? files[0].name + " is" : "These files are";
  act("Upload", "POST", form.action, data, subject);
}

form.addEventListener("submit", (event) => { event.preventDefault(); upload(input.files); });
for (const type of ["dragenter", "dragover"]) {
  document.addEventListener(type, (event) => {
    event.preventDefault();
    form.classList.add("over");
  });
}
document.addEventListener("dragleave", (event) => {
  if (event.relatedTarget === null) { form.classList.remove("over"); }
});
document.addEventListener("drop", (event) => {
  event.preventDefault();
  form.classList.remove("over");
  upload(event.dataTransfer.files);
});
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.delete");
  if (button && confirm("Delete " + button.dataset.name + "?")) {
    act("Delete", "DELETE", button.dataset.url, undefined, button.dataset.name + " is");
  }
});
"""


def _source_hash(source: str) -> str:
    """CSP level 2: an inline element is allowed by the hash of its text."""
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    f"script-src {_source_hash(SCRIPT)}",
    f"style-src {_source_hash(STYLE)}",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])
PAGE_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
]


def human_size(size: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _url(base: str, name: str) -> str:
    return base + quote(name, safe="")


def _breakable(escaped: str) -> str:
    """A name (already escaped) that may wrap after ``.``, ``_`` and ``-`` on a
    narrow screen rather than anywhere ("READM / E.md"); entities hold none."""
    return re.sub(r"([._-])", r"\1<wbr>", escaped)


def _row(entry: Entry, base: str) -> str:
    name, url, modified = escape(entry.name), escape(_url(base, entry.name)), _utc(entry.modified)
    return (
        f'<tr><td class="name"><a href="{url}" download="{name}">{_breakable(name)}</a></td>'
        f'<td class="size" title="{entry.size} bytes">{human_size(entry.size)}</td>'
        f'<td class="when"><time datetime="{modified:%Y-%m-%dT%H:%M:%SZ}">'
        f'{modified:%Y-%m-%d %H:%M}</time></td>'
        f'<td><button type="button" class="delete" data-url="{url}" data-name="{name}">'
        f"Delete</button></td></tr>"
    )


def _table(entries: Sequence[Entry], base: str) -> str:
    if not entries:
        return '<p class="empty" id="empty">No files yet.</p>'
    rows = "\n".join(_row(entry, base) for entry in entries)
    return ('<table id="files"><thead><tr><th>Name</th><th class="size">Size</th>'
            f"<th>Modified (UTC)</th><th></th></tr></thead>\n<tbody>\n{rows}\n</tbody></table>")


def _pages(listing: Listing, base: str) -> str:
    """The link to the next page, when there is one (a cursor: the last name shown)."""
    if listing.next_after is None:
        return ""
    url = escape(f"{base}?after={quote(listing.next_after, safe='')}")
    return f'<p class="pages"><a rel="next" href="{url}">Next page</a></p>'


def page(listing: Listing, base: str) -> Response:
    """The HTML page for one page of ``listing``; ``base`` is the URL of
    /files/ (escaped here)."""
    entries = listing.entries
    shown = sum(entry.size for entry in entries)
    count = listing.total
    summary = f"{count} {'file' if count == 1 else 'files'}"
    if listing.next_after is None and len(entries) == count:
        summary += f", {human_size(shown)}"
    else:
        summary += f" ({len(entries)} on this page, {human_size(shown)})"
    html = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Files</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>Files <small class="summary">{summary}</small></h1>
<form id="upload" method="post" action="{escape(base)}" enctype="multipart/form-data">
<label for="file-input"><strong>Drop files anywhere on this page</strong>, or choose:</label>
<input id="file-input" type="file" name="file" multiple>
<button type="submit" class="primary">Upload</button>
<p id="status" role="status" aria-live="polite"></p>
</form>
{_table(entries, base)}
{_pages(listing, base)}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
    return Response(html, headers=PAGE_HEADERS, content_type=HTML)


def listing_json(listing: Listing, base: str) -> dict[str, Any]:
    """One page of the listing as JSON: each file's name, size in bytes,
    modification time (RFC 3339, UTC) and URL; ``total`` files in all, and
    ``next``, the URL of the next page (null on the last)."""
    following = None
    if listing.next_after is not None:
        following = f"{base}?after={quote(listing.next_after, safe='')}"
    return {"files": [
        {"name": entry.name, "size": entry.size,
         "modified": f"{_utc(entry.modified):%Y-%m-%dT%H:%M:%SZ}", "url": _url(base, entry.name)}
        for entry in listing.entries
    ], "total": listing.total, "next": following}
