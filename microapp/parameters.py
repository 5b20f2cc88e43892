"""Field values with parameters: media types, Content-Disposition and Accept.

Owns reading one header field value into its parts (RFC 9110 sections 5.6.6
and 12.5.1, RFC 6266, RFC 8187) as pure functions; knows no environ, request
or I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import unquote

__all__ = ["extended_value", "filename_of", "parse_parameters", "preferred_media_type"]

# RFC 9110 section 5.6.2: token = 1*tchar.
TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# RFC 9110 section 5.6.6: parameter = parameter-name "=" parameter-value, the
# value a token or a quoted-string (section 5.6.4). A bare value runs to the
# next ";": clients send unquoted file names with spaces in them.
_PARAMETER = re.compile(
    rf'[ \t]*(?P<name>{TOKEN})[ \t]*=[ \t]*'
    r'(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^;"]*))[ \t]*(?=;|$)'
)
# RFC 9110 section 5.6.4: quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ).
# Only \" and \\ are undone: old browsers send Windows paths ("C:\dir\a.txt")
# unescaped, and their other backslashes must survive.
_QUOTED_PAIR = re.compile(r'\\(["\\])')
# RFC 9110 section 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def parse_parameters(value: str) -> tuple[str, dict[str, str]]:
    """``'form-data; name="a"'`` -> ``("form-data", {"name": "a"})``.

    The leading value is lower-cased and stripped, parameter names are
    lower-cased, the first of repeated parameters wins, and malformed
    parameters are skipped.
    """
    leading, _, _ = value.partition(";")
    parameters: dict[str, str] = {}
    position = len(leading)
    while position < len(value):  # value[position] is a ";"
        found = _PARAMETER.match(value, position + 1)
        if found is None:
            following = value.find(";", position + 1)
            position = len(value) if following < 0 else following
            continue
        quoted = found["quoted"]
        text = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else found["bare"].strip()
        parameters.setdefault(found["name"].lower(), text)
        position = found.end()
    return leading.strip().lower(), parameters


def extended_value(value: str) -> str | None:
    """RFC 8187 section 3.2.1: ``ext-value = charset "'" [ language ] "'"
    value-chars``, decoded; None when malformed or in a charset other than the
    two every recipient must support (UTF-8, ISO-8859-1)."""
    charset, first, rest = value.partition("'")
    _language, second, encoded = rest.partition("'")
    if not (first and second) or charset.lower() not in ("utf-8", "iso-8859-1"):
        return None
    try:
        return unquote(encoded, encoding=charset, errors="strict")
    except UnicodeDecodeError:
        return None


def filename_of(parameters: Mapping[str, str]) -> str | None:
    """The file name a Content-Disposition's parameters give, reduced to its
    last path segment (client names are untrusted); None when there is none.

    RFC 6266 section 4.3: ``filename*`` wins over ``filename`` when both are
    present and it can be decoded. RFC 7578 section 4.2 asks senders not to
    use ``filename*``, so it is only accepted, never required.
    """
    name = None
    if "filename*" in parameters:
        name = extended_value(parameters["filename*"])
    if name is None:
        name = parameters.get("filename")
    if name is None:
        return None
    return re.split(r"[/\\]", name)[-1]


def _ranges(accept: str) -> list[tuple[str, float]]:
    """RFC 9110 section 12.5.1: each media range with its weight; ranges with
    an invalid weight are dropped."""
    ranges = []
    for element in accept.split(","):
        media_range, parameters = parse_parameters(element)
        weight = parameters.get("q", "1")
        if media_range and _QVALUE.fullmatch(weight):
            ranges.append((media_range, float(weight)))
    return ranges


def _quality(ranges: list[tuple[str, float]], offer: str) -> float:
    """The weight of the most specific range that covers ``offer`` (0 for none)."""
    kind = offer.split("/", 1)[0] + "/*"
    for wanted in (offer, kind, "*/*"):
        weights = [weight for media_range, weight in ranges if media_range == wanted]
        if weights:
            return max(weights)
    return 0.0


def preferred_media_type(accept: str | None, offers: Sequence[str]) -> str:
    """The offer the Accept field weighs highest; on a tie, or when Accept is
    absent or refuses every offer, the first offer."""
    if not accept or not accept.strip():
        return offers[0]
    ranges = _ranges(accept.lower())
    best, best_quality = offers[0], 0.0
    for offer in offers:
        quality = _quality(ranges, offer)
        if quality > best_quality:
            best, best_quality = offer, quality
    return best
