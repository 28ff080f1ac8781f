"""The consoles every command prints to: results on stdout, messages and errors on stderr.

Text that comes from data (file names, indexed text, model output, rows of a questions file) goes through `plain`
and is printed with `markup=False, emoji=False`, so it can neither drive the terminal nor be read as Rich markup.
"""

import re

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

# C0 and C1 controls and DEL, the Unicode line and paragraph separators, the bidirectional formatting characters
# that can make text display in another order than it reads ("Trojan Source"), and lone surrogates (not printable).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}\ud800-\udfff]")
_UNSAFE_BUT_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029{_BIDI}\ud800-\udfff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def plain(text: str, *, multiline: bool = False) -> str:
    """`text` made safe for a terminal: each control character becomes a visible escape (ESC -> ``\\x1b``, U+202E ->
    ``\\u202e``), so data cannot move the cursor, recolour or retitle the terminal, or hide what it says. With
    `multiline`, newlines and tabs are kept. Printable text is returned unchanged."""
    return (_UNSAFE_BUT_LINES if multiline else _UNSAFE).sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
