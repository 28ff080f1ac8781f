"""Excel workbooks (.xlsx) -> items: each sheet's used cells as Markdown tables of a few dozen rows under their
header, and the pictures and native charts of its drawings (uncached chart data read from the cells)."""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path
from typing import Any

from mmrag.indexer.items import Item
from mmrag.indexer.office_charts import CellReader, cell_reader, cell_text, open_workbook
from mmrag.indexer.office_objects import (
    Budget,
    Graphic,
    Limit,
    Place,
    R,
    chart_item,
    embedded_id,
    graphics_in,
    picture_item,
)
from mmrag.indexer.office_package import parse_xml
from mmrag.indexer.reading import Deadline, ExtractOptions
from mmrag.indexer.tables import markdown_table

MAX_SHEET_ROWS = 20_000
MAX_SHEET_COLUMNS = 200
ROWS_PER_TABLE = 50
NS = {
    "pr": "http://schemas.openxmlformats.org/package/2006/relationships",
    "s": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
}


def xlsx_items(path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str]) -> list[Item]:
    """Each sheet's used cells as Markdown tables of ~50 rows (the header row repeated), its pictures and charts
    (references without a cache read from the workbook's cached cell values)."""
    book = open_workbook(str(path))
    try:
        cells = cell_reader(book)
        budget = Budget(options.max_text_bytes, warnings)
        items: list[Item] = []
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            sheet_parts = _sheet_parts(archive, members)
            for k, name in enumerate(book.sheetnames, start=1):  # worksheets and chart sheets, in order
                deadline.check()
                sheet = book[name]
                if hasattr(sheet, "iter_rows"):
                    items += _sheet_tables(sheet, k, options, deadline, warnings, budget)
                if (part := sheet_parts.get(name)) is not None:
                    items += _sheet_drawings(archive, members, part, name, k, cells, options, deadline, warnings)
        return items
    finally:
        book.close()


def _sheet_tables(
    sheet: Any, k: int, options: ExtractOptions, deadline: Deadline, warnings: list[str], budget: Budget
) -> list[Item]:
    """A sheet's used rows as Markdown tables of ROWS_PER_TABLE rows under its header row, each captioned with the
    sheet rows it holds; a title above the header (up to 3 rows of one cell each) goes with every table."""
    rows = _sheet_rows(sheet, deadline, warnings)
    if not rows:
        return []
    width = max(max((i + 1 for i, t in enumerate(texts) if t), default=0) for _, texts in rows)
    rows = [(r, texts[:width]) for r, texts in rows]
    fuller = next((n for n, (_, texts) in enumerate(rows[:4]) if sum(1 for t in texts if t) > 1), 0)
    heading = "\n".join(" ".join(t for t in texts if t) for _, texts in rows[:fuller])
    (first, header), body = rows[fuller], rows[fuller + 1 :]
    items = []
    for i, start in enumerate(range(0, max(len(body), 1), ROWS_PER_TABLE)):
        part = body[start : start + ROWS_PER_TABLE]
        low, high = (part[0][0], part[-1][0]) if part else (first, first)
        caption = f'Sheet "{sheet.title}", ' + (f"rows {low}-{high}" if high > low else f"row {low}")
        text = budget.take("\n".join(s for s in (heading, markdown_table([header, *(t for _, t in part)])) if s))
        if not text:
            break
        items.append(
            Item(
                kind="table",
                locator=f"sheet:{k}:table:{i}",
                text=f"{caption}\n{text}",
                caption=caption,
                shape=f'Sheet "{sheet.title}"',
            )
        )
    return items


def _sheet_rows(sheet: Any, deadline: Deadline, warnings: list[str]) -> list[tuple[int, list[str]]]:
    """(row number from 1, its cells as text) of each row that holds text, within MAX_SHEET_ROWS and
    MAX_SHEET_COLUMNS (a warning, once, for what lies past them)."""
    rows = []
    wide = False
    for r, row in enumerate(sheet.iter_rows(values_only=True, max_col=MAX_SHEET_COLUMNS + 1), start=1):
        if r % 1000 == 0:
            deadline.check()
        if r > MAX_SHEET_ROWS:
            warnings.append(f'sheet "{sheet.title}": rows after {MAX_SHEET_ROWS} not indexed')
            break
        if not wide and len(row) > MAX_SHEET_COLUMNS and any(v is not None for v in row[MAX_SHEET_COLUMNS:]):
            warnings.append(f'sheet "{sheet.title}": columns after {MAX_SHEET_COLUMNS} not indexed')
            wide = True
        texts = [cell_text(v) for v in row[:MAX_SHEET_COLUMNS]]
        if any(texts):
            rows.append((r, texts))
    return rows


def _rels(archive: zipfile.ZipFile, members: set[str], part: str) -> dict[str, tuple[str, str]]:
    """rId -> (relationship type, target part name) of a part (its _rels/NAME.rels, when among the archive's
    `members`), internal targets only."""
    folder, name = posixpath.split(part)
    rels_name = posixpath.join(folder, "_rels", name + ".rels")
    if rels_name not in members:
        return {}
    found = {}
    for rel in parse_xml(archive.read(rels_name), rels_name).findall("pr:Relationship", NS):
        if rel.get("TargetMode") == "External":
            continue
        target = rel.get("Target", "")
        resolved = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
        found[rel.get("Id", "")] = (rel.get("Type", ""), resolved)
    return found


def _sheet_parts(archive: zipfile.ZipFile, members: set[str]) -> dict[str, str]:
    """Sheet name -> its worksheet part."""
    book = "xl/workbook.xml"
    rels = _rels(archive, members, book)
    sheets = parse_xml(archive.read(book), book).findall("s:sheets/s:sheet", NS)
    return {s.get("name", ""): rels[s.get(f"{{{R}}}id", "")][1] for s in sheets if s.get(f"{{{R}}}id", "") in rels}


def _sheet_drawings(
    archive: zipfile.ZipFile,
    members: set[str],
    part: str,
    title: str,
    k: int,
    cells: CellReader,
    options: ExtractOptions,
    deadline: Deadline,
    warnings: list[str],
) -> list[Item]:
    """The charts and pictures of a sheet's drawings (every one of a group; `members`: the archive's part names),
    within the limit; a graphic that is not read is named in a warning."""
    items: list[Item] = []
    counts = {"figure": 0, "chart": 0}
    limit = Limit(
        options.max_page_objects,
        warnings,
        f'sheet "{title}": more than {options.max_page_objects} drawings; the rest left out (MMRAG_MAX_PAGE_OBJECTS)',
    )
    for kind, drawing in _rels(archive, members, part).values():
        if not kind.endswith("/drawing") or drawing not in members:
            continue
        targets = _rels(archive, members, drawing)
        for graphic in graphics_in(parse_xml(archive.read(drawing), drawing)):
            if not limit.take():
                break
            deadline.check()
            where = f'sheet "{title}": {graphic.name or "a drawing"}'
            if graphic.kind not in ("chart", "picture"):
                warnings.append(f"{where}: {graphic.kind} not read")
                continue
            rid = (
                graphic.element.get(f"{{{R}}}id", "")
                if graphic.kind == "chart"
                else embedded_id(graphic, where, warnings)
            )
            if rid is None:
                continue
            if (target := targets.get(rid, ("", ""))[1]) not in members:
                warnings.append(f"{where}: {graphic.kind} left out: its part is missing")
                continue
            if graphic.kind == "chart":
                place = Place(f"sheet:{k}:chart:{counts['chart']}", f'Sheet "{title}": {graphic.name}')
                item = chart_item(archive.read(target), target, cells, place, warnings)
                counts["chart"] += item is not None
            else:
                item = _sheet_picture(archive, target, graphic, title, k, counts["figure"], options, warnings)
                counts["figure"] += item is not None
            if item is not None:
                items.append(item)
    return items


def _sheet_picture(
    archive: zipfile.ZipFile,
    member: str,
    graphic: Graphic,
    title: str,
    k: int,
    i: int,
    options: ExtractOptions,
    warnings: list[str],
) -> Item | None:
    place = Place(f"sheet:{k}:figure:{i}", f'Sheet "{title}": {graphic.name}', graphic.alt)
    return picture_item(archive.read(member), member, place, graphic.alt, options, warnings, f'sheet "{title}"')
