"""RFC 9110/9112 grammar as compiled byte patterns. Knows no I/O and no state.

Every pattern works on bytes: RFC 9112 section 2.2 asks recipients to parse
octets, and Python's text helpers (``int``, ``str.strip``, ``splitlines``)
accept far more than the grammar does.
"""

from __future__ import annotations

import re

# RFC 9110 section 5.6.2:
#   token = 1*tchar
#   tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#           "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
TOKEN = TCHAR + rb"+"
token = re.compile(TOKEN)

# RFC 9112 section 3:
#   request-line = method SP request-target SP HTTP-version
#   method = token
#   HTTP-version = HTTP-name "/" DIGIT "." DIGIT   (section 2.3, case-sensitive)
# The target is any run of visible US-ASCII here; its form is checked apart.
request_line = re.compile(
    rb"(" + TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])"
)

# RFC 9110 section 5.5: field-value = *field-content, built of VCHAR,
# obs-text, SP and HTAB. Any other control octet (NUL, CR, LF, ...) is refused.
forbidden_in_value = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# RFC 9112 section 5: field-line = field-name ":" OWS field-value OWS, with the
# name a token and the value free of those control octets: one match per line
# gives the name and the trimmed value (a line that does not match is refused,
# and parser.py says why).
field_line = re.compile(
    rb"(" + TOKEN + rb"):[ \t]*((?:[^\x00-\x08\x0a-\x1f\x7f]*[^\x00-\x20\x7f])?)[ \t]*"
)

# RFC 9110 section 8.6: Content-Length = 1*DIGIT
digits = re.compile(rb"[0-9]+")

# RFC 9112 section 7.1:
#   chunk-size = 1*HEXDIG
#   chunk-ext  = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#   chunk-ext-val = token / quoted-string
# quoted-string (RFC 9110 section 5.6.4) = DQUOTE *( qdtext / quoted-pair ) DQUOTE
QUOTED_STRING = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
CHUNK_EXT = (
    rb"(?:[ \t]*;[ \t]*" + TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:" + TOKEN + rb"|" + QUOTED_STRING + rb"))?)*"
)
# Sixteen hex digits are far beyond any body we accept; more cannot be a
# chunk size we would honour, so they are refused before conversion.
chunk_size_line = re.compile(rb"([0-9A-Fa-f]{1,16})" + CHUNK_EXT)

# RFC 3986 section 3.2.2 / RFC 9110 section 7.2: Host = uri-host [ ":" port ]
#   uri-host = IP-literal / IPv4address / reg-name
# reg-name's sub-delims and pct-encoded are allowed; empty is allowed too
# (RFC 9112 section 3.2: a request without an authority sends an empty Host).
host = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+(?:%25[\w.~-]+)?\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?"
)

# RFC 9112 section 3.2.2: absolute-form = absolute-URI, here only http(s).
absolute_target = re.compile(rb"([A-Za-z][A-Za-z0-9+\-.]*)://([^/?#]*)([^#]*)")

# The token rule for text: response field names from applications, Forwarded
# pairs, WebSocket subprotocols and header names in log formats.
TOKEN_TEXT = TOKEN.decode("ascii")
token_text = re.compile(TOKEN_TEXT)
QUOTED_STRING_TEXT = QUOTED_STRING.decode("latin-1")
