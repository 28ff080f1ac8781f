"""Tables as rows of cells and as GitHub Markdown: ruled (grid) tables on PDF pages, found with pdfplumber.

HTML and Markdown tables are read by indexer/documents.py and written with the same `markdown_table`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.core.errors import error_text
from mmrag.indexer.items import Box

Rows = list[list[str]]

_RULED = {"vertical_strategy": "lines", "horizontal_strategy": "lines"}
_MIN_RULE_PT = 36.0
"""A path this long (either side, in points) may be a table's rule or border."""


@dataclass(frozen=True)
class TableRegion:
    """A table found on a PDF page."""

    page: int
    bbox: Box
    """(x0, top, x1, bottom) in points on the page as displayed (rotation applied), origin at its top-left."""
    rows: Rows
    """Cells row by row as read (the header first); spanned and empty cells are ''."""
    markdown: str


def markdown_table(rows: Sequence[Sequence[str | None]], max_chars: int | None = None) -> str:
    """A GitHub pipe table: the first row is the header, short rows are padded, None is an empty cell, and pipes
    and line breaks inside cells are escaped. Rows past `max_chars` characters are left out."""
    width = max((len(row) for row in rows), default=0)
    if width == 0:
        return ""
    lines = [_markdown_row(rows[0], width), "|" + " --- |" * width]
    used = len(lines[0]) + len(lines[1]) + 2
    for row in rows[1:]:
        line = _markdown_row(row, width)
        if max_chars is not None and used + len(line) + 1 > max_chars:
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def _markdown_row(row: Sequence[str | None], width: int) -> str:
    cells = [_markdown_cell(cell) for cell in row] + [""] * (width - len(row))
    return "| " + " | ".join(cells) + " |"


def _markdown_cell(cell: str | None) -> str:
    lines = [" ".join(line.split()) for line in (cell or "").splitlines()]
    return "<br>".join(line for line in lines if line).replace("\\", "\\\\").replace("|", "\\|")


def is_table(rows: Sequence[Sequence[str | None]]) -> bool:
    """At least 2 rows and 2 columns, and at least half of the (unspanned) cells hold text: not a ruled box, a
    chart's grid or a layout frame."""
    if len(rows) < 2 or max(len(row) for row in rows) < 2:
        return False
    cells = [cell for row in rows for cell in row if cell is not None]
    filled = sum(1 for cell in cells if cell.strip())
    return filled >= 2 and 2 * filled >= len(cells)


def find_pdf_tables(
    path: Path,
    page_numbers: Sequence[int],
    max_objects: int = 20_000,
    max_crossings: int = 4_000,
    check: Callable[[], None] | None = None,
    warnings: list[str] | None = None,
) -> dict[int, list[TableRegion]]:
    """The ruled tables on the given pages (1-based) of a PDF, by page. A page with more than `max_objects`
    characters, or whose rules cross more than `max_crossings` times (the search grows faster than that count), is
    skipped and said in `warnings`, as is a page pdfplumber cannot read;
    `check` is called between pages (a Deadline's check: what it raises ends the search)."""
    import pdfplumber

    found: dict[int, list[TableRegion]] = {}
    wanted = sorted(set(page_numbers))
    if not wanted:
        return found
    try:
        pdf = pdfplumber.open(path, pages=wanted)
    except Exception as e:  # pdfminer raises many types on broken or encrypted files
        _warn(warnings, f"tables not read: {error_text(e)}")
        return found
    with pdf:
        for page in _pages(pdf, warnings):
            if check is not None:
                check()
            try:
                tables = tables_on_page(page, max_objects, max_crossings, warnings)
            except Exception as e:  # a broken page costs its tables
                _warn(warnings, f"page {page.page_number}: tables not read: {error_text(e)}")
                continue
            finally:
                page.close()
            if tables:
                found[page.page_number] = tables
    return found


def _pages(pdf: Any, warnings: list[str] | None) -> list[Any]:
    try:
        return list(pdf.pages)
    except Exception as e:
        _warn(warnings, f"tables not read: {error_text(e)}")
        return []


def tables_on_page(
    page: Any, max_objects: int = 20_000, max_crossings: int = 4_000, warnings: list[str] | None = None
) -> list[TableRegion]:
    """The ruled tables of an open pdfplumber page."""
    number = page.page_number
    if len(page.chars) > max_objects:
        _warn(warnings, f"page {number}: {len(page.chars)} characters, too many to look for tables")
        return []
    try:
        tables = _ruled_tables(page, max_crossings)
    except _TooManyRulesError as e:
        _warn(warnings, f"page {number}: {e}, too many to look for tables")
        return []
    left, top = page.cropbox[0], page.cropbox[1]  # pdfplumber measures from the media box, the display from the crop
    regions = []
    for table in tables:
        rows = _read(page, table)
        if not is_table(rows):
            continue
        x0, y0, x1, y1 = table.bbox
        bbox = (float(x0 - left), float(y0 - top), float(x1 - left), float(y1 - top))
        cells = [[cell or "" for cell in row] for row in rows]
        regions.append(TableRegion(page=number, bbox=bbox, rows=cells, markdown=markdown_table(cells)))
    return regions


class _TooManyRulesError(Exception):
    pass


def _ruled_tables(page: Any, max_crossings: int) -> list[Any]:
    """pdfplumber's TableFinder (the ruled-lines strategy), stopped before its searches when the rules cross too
    often: pairing the rules costs their product, and finding cells grows faster than the crossings."""
    from pdfplumber import table as plumber

    finder = plumber.TableFinder.__new__(plumber.TableFinder)  # its __init__ runs the searches unbounded
    finder.page, finder.settings = page, plumber.TableSettings.resolve(_RULED)
    edges = finder.get_edges()
    vertical = sum(1 for edge in edges if edge["orientation"] == "v")
    if vertical * (len(edges) - vertical) > 50 * max_crossings:
        raise _TooManyRulesError(f"{vertical} vertical and {len(edges) - vertical} horizontal rules")
    tolerance = finder.settings.intersection_x_tolerance, finder.settings.intersection_y_tolerance
    crossings = plumber.edges_to_intersections(edges, *tolerance)
    if len(crossings) > max_crossings:
        raise _TooManyRulesError(f"rules crossing {len(crossings)} times")
    return [plumber.Table(page, cells) for cells in plumber.cells_to_tables(plumber.intersections_to_cells(crossings))]


def _read(page: Any, table: Any) -> list[list[str | None]]:
    """The cells as the text reads: a table shown sideways or upside down (a rotated page, a landscape table) is
    turned so that its header is the first row and its text reads left to right."""
    bbox = table.bbox
    chars = [c for c in page.chars if _centre_in(c, bbox)]
    direction = _text_direction(chars)
    size = (float(page.width), float(page.height))
    rows: list[list[str | None]] = []
    for row in table.rows:
        in_row = [c for c in chars if _centre_in(c, row.bbox)]
        texts: list[str | None] = []
        for cell in row.cells:
            inside = [] if cell is None else [_reading(c, direction, size) for c in in_row if _centre_in(c, cell)]
            texts.append(None if cell is None else _text(inside))
        rows.append(texts)
    width = max((len(row) for row in rows), default=0)
    rows = [row + [None] * (width - len(row)) for row in rows]
    if direction == (0, -1):  # turned clockwise: the header is the last column, read top to bottom
        return [list(column) for column in zip(*rows, strict=True)][::-1]
    if direction == (0, 1):  # turned counter-clockwise: the header is the first column, read bottom to top
        return [list(column)[::-1] for column in zip(*rows, strict=True)]
    if direction == (-1, 0):  # upside down
        return [row[::-1] for row in rows[::-1]]
    return rows


def _centre_in(char: dict[str, Any], box: Box) -> bool:
    x, y = (char["x0"] + char["x1"]) / 2, (char["top"] + char["bottom"]) / 2
    return bool(box[0] <= x < box[2] and box[1] <= y < box[3])


def _text_direction(chars: list[dict[str, Any]]) -> tuple[int, int]:
    """The direction most of `chars` run in on the page, as a unit vector (y up, as in the PDF)."""
    votes: dict[tuple[int, int], int] = {}
    for char in chars:
        a, b = char["matrix"][:2]
        key = ((1, 0), (0, 1), (-1, 0), (0, -1))[round(math.degrees(math.atan2(b, a)) / 90) % 4]
        votes[key] = votes.get(key, 0) + 1
    return max(votes, key=votes.__getitem__) if votes else (1, 0)


def _reading(char: dict[str, Any], direction: tuple[int, int], size: tuple[float, float]) -> dict[str, Any]:
    """`char` placed as if its text ran left to right, lines top to bottom (how pdfplumber reads text)."""
    width, height = size
    x0, top, x1, bottom = char["x0"], char["top"], char["x1"], char["bottom"]
    if direction == (0, -1):  # running down the page, lines stacked right to left
        x0, top, x1, bottom = top, width - x1, bottom, width - x0
    elif direction == (0, 1):  # running up, lines stacked left to right
        x0, top, x1, bottom = height - bottom, x0, height - top, x1
    elif direction == (-1, 0):
        x0, top, x1, bottom = width - x1, height - bottom, width - x0, height - top
    else:
        return char
    return char | {"x0": x0, "x1": x1, "top": top, "bottom": bottom, "doctop": top, "upright": True}


def _text(chars: list[dict[str, Any]]) -> str:
    from pdfplumber.utils import extract_text

    return str(extract_text(chars)) if chars else ""


def _warn(warnings: list[str] | None, message: str) -> None:
    if warnings is not None:
        warnings.append(message)
