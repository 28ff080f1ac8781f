"""JSON Lines, read the one way every reader here needs: a line that does not parse is reported, not fatal."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


class JsonLineError(ValueError):
    """One line is not JSON; its message says why in a few words."""


def json_lines(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line; a line that does not parse gives a `JsonLineError` in
    place of its value, so the caller chooses to stop or to report it and go on. Split text on "\\n" only before
    calling: U+2028, U+0085 and friends may stand inside a record's strings."""
    for number, text in enumerate(lines, start=1):
        if text.strip():
            yield number, _parse(text)


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        return JsonLineError("nested too deeply to parse")
    except json.JSONDecodeError as e:
        return JsonLineError(f"invalid JSON: {e.msg}")
    except ValueError as e:  # an integer of over 4300 digits
        return JsonLineError(f"invalid JSON: {str(e).split(';')[0]}")
