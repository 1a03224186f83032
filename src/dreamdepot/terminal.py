"""Text from the catalog on its way to a terminal or a spreadsheet.

Prompts, tags, file names and metadata are untrusted: a prompt can carry ``ESC]52;…`` (write
the clipboard), ``ESC]0;…`` (set the window title), ``ESC[2J`` (clear the screen), C1 codes
such as U+009B (a one-byte CSI) or bidirectional overrides that reorder what a reader sees.
Everything the CLI prints from the catalog goes through :func:`escape` (rich markup too) or,
for JSON, :func:`json_text`; CSV cells through :func:`csv_cell`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.markup import escape as _markup_escape

# C0 except tab and newline, DEL, C1, and the bidirectional embedding/override/isolate marks
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# in JSON text json.dumps already escapes C0; these are what it leaves raw
_JSON_RAW = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def clean(text: Any) -> str:
    r"""The text with every control sequence made visible and harmless.

    >>> clean("a\x1b]52;c;aGk=\x07b\u009b2J")
    'a\\x1b]52;c;aGk=\\x07b\\x9b2J'
    >>> clean("line one\nline two\ttab")
    'line one\nline two\ttab'
    """
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                         else f"\\u{ord(m.group()):04x}", str(text))  # fmt: skip


def escape(text: Any) -> str:
    """For rich's console: controls made visible, then markup escaped."""
    return _markup_escape(clean(text))


def json_text(value: Any, **kwargs: Any) -> str:
    r"""JSON for standard output: like ``json.dumps(..., ensure_ascii=False)`` but with the
    C1 and bidi characters it would leave raw written as ``\u`` escapes (same JSON value).

    >>> json_text({"p": "x\u009by"})
    '{"p": "x\\u009by"}'
    """
    kwargs.setdefault("ensure_ascii", False)
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, **kwargs))


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula gets a leading ``'`` (OWASP's
    advice for CSV injection); other values pass unchanged.

    >>> print(csv_cell('=HYPERLINK("http://x")'), csv_cell("@SUM(A1)"), csv_cell("a cat"))
    '=HYPERLINK("http://x") '@SUM(A1) a cat
    >>> csv_cell(-1)
    -1
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
