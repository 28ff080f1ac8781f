"""The consoles every command prints to: results on stdout, messages and errors on stderr.

Text that comes from data (file names, indexed text, model output, rows of a questions file) goes through `plain`
and is printed with `markup=False, emoji=False`, so it can neither drive the terminal nor be read as Rich markup.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

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


class Bar:
    """A progress bar on stderr, or nothing when hidden: `advance` adds finished work, `update` sets it."""

    def __init__(self, progress: Progress | None = None, task: TaskID | None = None) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def update(self, done: int, total: int | None = None, *, rate: str = "") -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, total=total, rate=rate)

    @property
    def elapsed(self) -> float:
        if self._progress is None or self._task is None:
            return 0.0
        return next((t.elapsed or 0.0 for t in self._progress.tasks if t.id == self._task), 0.0)


@contextmanager
def progress_bar(description: str, total: int | None = None, *, show: bool = True, unit: str = "") -> Iterator[Bar]:
    """A transient bar for long work: description, bar, done/total, `unit` and a rate if `update` gives one, time."""
    if not show:
        yield Bar()
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{unit}  {{task.fields[rate]}}" if unit else "{task.fields[rate]}"),
        TimeElapsedColumn() if total is None else TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        yield Bar(progress, progress.add_task(description, total=total, rate=""))
