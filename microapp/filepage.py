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
input[type=file] { font: inherit; max-width: 100%; }
@media (prefers-color-scheme: dark) {
  /* Links #93c5fd on the dark background: about 9:1 (WCAG AA asks 4.5:1). */
  :root { --link: #93c5fd; --accent: #1d4ed8; }
  #status { color: #fbbf24; }
}
button.delete:hover { border-color: #dc2626; color: #dc2626; }
.empty { color: #888; }
#filter { font: inherit; margin-top: 1.25rem; padding: .3rem .6rem; width: min(100%, 20rem);
  border: 1px solid var(--line); border-radius: .4rem; background: transparent; color: inherit; }
#filter + table { margin-top: .5rem; }
th button.sort { all: unset; cursor: pointer; }
th button.sort:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
th[aria-sort=ascending] button.sort::after { content: " \\25B2"; }
th[aria-sort=descending] button.sort::after { content: " \\25BC"; }
@media (max-width: 40rem) {
  /* A phone: the four columns fit without scrolling sideways; the date
     without its time (which the cell's title still gives). */
  main { padding: 1rem .75rem; }
  table { font-size: .875rem; }
  th, td { padding: .4rem .3rem; }
  .clock { display: none; }
  button.delete { padding: .2rem .45rem; }
}
"""

SCRIPT = """
"use strict";
const form = document.getElementById("upload");
const input = document.getElementById("file-input");
const status = document.getElementById("status");
const say = (text) => { status.textContent = text; };
const NOTE = "files-page-note";  // what happened, said again after the reload

const note = sessionStorage.getItem(NOTE);
if (note) { sessionStorage.removeItem(NOTE); say(note); }

function send(method, url, body, headers) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(method, url);
    request.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(headers || {})) {
      request.setRequestHeader(name, value);
    }
    request.upload.onprogress = (event) => {
      if (event.lengthComputable && body) {
        say("Uploading " + body.name + "\\u2026 " +
            Math.round(100 * event.loaded / event.total) + "%");
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

const succeeded = (answer) => answer.status >= 200 && answer.status < 300;
const fileUrl = (name) => form.action + encodeURIComponent(name);

function reloadSaying(text) {
  sessionStorage.setItem(NOTE, text);
  location.reload();
}

// One file: never replaced without asking. HEAD says whether it exists (so a
// large file is not sent only to be refused); the PUT itself carries
// If-None-Match: * so that a file made meanwhile is not replaced either.
async function putOne(file, outcome) {
  const url = fileUrl(file.name);
  let replace = (await send("HEAD", url)).status === 200;
  if (replace && !confirm(file.name + " exists: replace it?")) {
    outcome.kept.push(file.name);
    return;
  }
  let answer = await send("PUT", url, file, replace ? {} : {"If-None-Match": "*"});
  if (answer.status === 412) {
    if (!confirm(file.name + " exists: replace it?")) { outcome.kept.push(file.name); return; }
    replace = true;
    answer = await send("PUT", url, file);
  }
  if (succeeded(answer)) {
    (replace ? outcome.replaced : outcome.added).push(file.name);
  } else {
    outcome.failed.push(reason(answer, "Uploading " + file.name, file.name + " is"));
  }
}

function told(outcome) {
  const parts = [];
  const added = outcome.added, replaced = outcome.replaced;
  if (added.length) {
    parts.push("uploaded " + (added.length === 1 ? added[0] : added.length + " files"));
  }
  if (replaced.length) { parts.push("replaced " + replaced.join(", ")); }
  if (outcome.kept.length) { parts.push("kept " + outcome.kept.join(", ") + " as it was"); }
  let text = parts.join("; ");
  text = text ? text[0].toUpperCase() + text.slice(1) + "." : "";
  return [text, ...outcome.failed].filter(Boolean).join(" ");
}

async function upload(files) {
  if (!files || files.length === 0) { say("Choose or drop a file first."); return; }
  const outcome = {added: [], replaced: [], kept: [], failed: []};
  for (const file of Array.from(files)) {
    try {
      await putOne(file, outcome);
    } catch (error) {
      outcome.failed.push("Uploading " + file.name + " failed: " + error.message + ".");
    }
  }
  if (outcome.added.length || outcome.replaced.length) {
    reloadSaying(told(outcome));
  } else {
    say(told(outcome));
  }
}

async function remove(button) {
  const name = button.dataset.name;
  try {
    const answer = await send("DELETE", button.dataset.url);
    if (succeeded(answer)) {
      reloadSaying("Deleted " + name + ".");
    } else {
      say(reason(answer, "Deleting " + name, name + " is"));
    }
  } catch (error) {
    say("Deleting " + name + " failed: " + error.message + ".");
  }
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
  if (button && confirm("Delete " + button.dataset.name + "?")) { remove(button); }
});

// Sorting and filtering, in the page: the list as served (by name) without
// JavaScript, these controls with it.
const table = document.getElementById("files");
if (table) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const byName = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
  const compare = {
    name: (a, b) => byName.compare(a.dataset.name, b.dataset.name),
    size: (a, b) => Number(a.dataset.size) - Number(b.dataset.size),
    modified: (a, b) => Number(a.dataset.modified) - Number(b.dataset.modified),
  };
  const heads = Array.from(table.tHead.rows[0].cells).filter((cell) => cell.dataset.key);
  let order = {key: "name", ascending: true};
  const sortRows = () => {
    const sign = order.ascending ? 1 : -1;
    rows.sort((a, b) => sign * compare[order.key](a, b) || compare.name(a, b));
    body.append(...rows);
    for (const head of heads) {
      head.setAttribute("aria-sort", head.dataset.key !== order.key ? "none" :
                        order.ascending ? "ascending" : "descending");
    }
  };
  for (const head of heads) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    button.textContent = head.textContent;
    head.textContent = "";
    head.append(button);
    button.addEventListener("click", () => {
      const key = head.dataset.key;
      // A new column starts where people look first: names A to Z, the
      // largest and the newest files first; the same column turns around.
      order = {key, ascending: order.key === key ? !order.ascending : key === "name"};
      sortRows();
    });
  }
  sortRows();
  const filter = document.getElementById("filter");
  const none = document.getElementById("no-match");
  filter.hidden = false;
  filter.addEventListener("input", () => {
    const wanted = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const row of rows) {
      row.hidden = !row.dataset.name.toLowerCase().includes(wanted);
      shown += row.hidden ? 0 : 1;
    }
    none.hidden = shown > 0;
  });
}
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
        f'<tr data-name="{name}" data-size="{entry.size}" data-modified="{entry.modified:.0f}">'
        f'<td class="name"><a href="{url}" download="{name}">{_breakable(name)}</a></td>'
        f'<td class="size" title="{entry.size} bytes">{human_size(entry.size)}</td>'
        f'<td class="when" title="{modified:%Y-%m-%d %H:%M} UTC">'
        f'<time datetime="{modified:%Y-%m-%dT%H:%M:%SZ}">'
        f'{modified:%Y-%m-%d}<span class="clock"> {modified:%H:%M}</span></time></td>'
        f'<td><button type="button" class="delete" data-url="{url}" data-name="{name}">'
        f"Delete</button></td></tr>"
    )


def _table(entries: Sequence[Entry], base: str) -> str:
    if not entries:
        return '<p class="empty" id="empty">No files yet.</p>'
    rows = "\n".join(_row(entry, base) for entry in entries)
    # The filter and the sort buttons are the script's: hidden or plain
    # headings without it.
    return ('<input id="filter" type="search" placeholder="Filter by name" '
            'aria-label="Filter files by name" autocomplete="off" hidden>\n'
            '<table id="files"><thead><tr><th data-key="name">Name</th>'
            '<th class="size" data-key="size">Size</th>'
            '<th data-key="modified">Modified (UTC)</th><th></th></tr></thead>\n'
            f"<tbody>\n{rows}\n</tbody></table>\n"
            '<p class="empty" id="no-match" hidden>No file name matches.</p>')


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
