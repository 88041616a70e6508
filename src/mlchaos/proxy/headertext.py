"""What a header name or value written by the proxy may contain (one rule for the proxy and the experiment side).

The ``http-error`` fault writes its ``headers`` and ``content_type`` verbatim into a
response.  A CR or LF there would end the header line early and let the value forge
further headers or a whole second response (response splitting), a NUL or other control
character confuses parsers, and a value outside latin-1 cannot be put on the wire at all
(it would raise at request time, inside the data path).  The proxy itself writes
``Content-Length`` and ``Connection``, so a fault must not set those (nor
``Transfer-Encoding``): two framings in one response are a smuggling primitive.

Both the proxy's parameter model (control API: 400) and the experiment's
``http-error`` spec (``mlchaos validate``: FILE:LINE:COL) call :func:`check_name`
and :func:`check_value`, so the two sides cannot disagree.  Stdlib only.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""RFC 9110 ``token``: the only characters a field name may have."""
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e\x80-\xff]")
"""Anything but HTAB, visible ASCII, space and obs-text (latin-1 high half)."""
FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
MAX_LEN = 8192


def _show(ch: str) -> str:
    return repr(ch)[1:-1] if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}"


def check_name(name: str) -> str:
    """``name`` if it can be a response header the fault sets; ValueError saying why not."""
    if not _TOKEN.fullmatch(name):
        bad = next((c for c in name if not _TOKEN.fullmatch(c)), "")
        what = f"character '{_show(bad)}'" if bad else "an empty name"
        raise ValueError(f"header name {name!r} has {what}; names are RFC 9110 tokens (letters, digits, -_.!#$%&'*+^`|~)")
    if name.lower() in FRAMING:
        raise ValueError(f"header {name!r} is written by the proxy itself (it frames the response); a fault cannot set it")
    return name


def check_value(value: str, what: str = "header value") -> str:
    """``value`` if it can be written in a header line; ValueError naming the first bad character."""
    if len(value) > MAX_LEN:
        raise ValueError(f"{what} is {len(value)} characters long; at most {MAX_LEN}")
    bad = _BAD_VALUE.search(value)
    if bad is not None:
        ch = bad.group()
        why = ("CR and LF would end the header line (response splitting)" if ch in "\r\n"
               else "control characters are not allowed" if ord(ch) < 0x20 or ord(ch) == 0x7F
               else "only latin-1 characters can be written in a header")
        raise ValueError(f"{what} has the character '{_show(ch)}' at offset {bad.start()}: {why}")
    return value


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    """Every name and value of ``headers`` checked (see :func:`check_name`, :func:`check_value`)."""
    for k, v in headers.items():
        check_name(k)
        check_value(v, f"header {k!r}")
    return headers
