"""Word documents (.docx) -> items: the body's paragraphs and tables in reading order (text boxes, content
controls and tracked insertions read as Word shows them), its tables, pictures and native charts."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from mmrag.indexer.items import Item
from mmrag.indexer.office_objects import (
    FALLBACK,
    Budget,
    Graphic,
    Limit,
    Place,
    R,
    embedded_id,
    find_caption,
    graphics_in,
    inside,
    part_chart_item,
    picture_item,
    table_items,
)
from mmrag.indexer.reading import Deadline, ExtractOptions, chunk_text

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
NS = {"w": W, "wp": "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"}


@dataclass
class _Block:
    text: str
    drawings: list[Any]
    rows: list[list[str]] | None = None


def docx_items(path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str]) -> list[Item]:
    """Body paragraphs and tables in order as text chunks (text boxes after the paragraph that holds them), each
    table as table items, pictures and charts."""
    import docx

    document = docx.Document(str(path))
    budget = Budget(options.max_text_bytes, warnings)
    table_budget = Budget(options.max_text_bytes, warnings, "table text")
    limit = Limit(
        options.max_page_objects,
        warnings,
        f"more than {options.max_page_objects} pictures; the rest left out (MMRAG_MAX_PAGE_OBJECTS)",
    )
    blocks = list(_docx_blocks(document.element.body, document))
    body = budget.take("\n".join(b.text for b in blocks if b.text))
    items = [
        Item(kind="text", locator=f"chunk:{i}", text=chunk, chunk=i)
        for i, chunk in enumerate(chunk_text(body, options))
    ]
    texts = [b.text if b.rows is None else "" for b in blocks]
    counts = {"table": 0, "figure": 0, "chart": 0}
    for n, block in enumerate(blocks):
        deadline.check()
        before, after = texts[n - 1] if n else "", texts[n + 1] if n + 1 < len(texts) else ""
        if block.rows is not None:
            caption, label = find_caption([before, after], table=True)
            place = Place("table", caption=caption, label=label)
            tables = table_items(block.rows, options.chunk_size * 8, table_budget, place, counts["table"])
            items += tables
            counts["table"] += len(tables)
        for drawing in block.drawings:
            near = [block.text, after, before]
            items += _docx_drawing(document, drawing, near, counts, options, deadline, warnings, limit)
    return items


_W_RUN = f"{{{W}}}r"
_W_BREAK = f"{{{W}}}br"
_W_RUN_TEXT = {
    f"{{{W}}}t": "",
    f"{{{W}}}tab": "\t",
    f"{{{W}}}ptab": "\t",
    f"{{{W}}}br": "\n",
    f"{{{W}}}cr": "\n",
    f"{{{W}}}noBreakHyphen": "-",
}
_W_APART = frozenset({f"{{{W}}}del", f"{{{W}}}moveFrom", f"{{{W}}}txbxContent", FALLBACK})
"""What a paragraph's own text and drawings leave out: deleted (or moved away) runs, a copy of an mc:Choice, and
text boxes (read as blocks of their own)."""


def _own(element: Any, tag: str) -> list[Any]:
    """The `tag` elements inside an element, leaving out what lies in _W_APART."""
    return [found for found in element.iter(tag) if not inside(found, _W_APART, element)]


def _paragraph_text(paragraph: Any) -> str:
    """A paragraph's text as Word shows it: the runs in tracked insertions, content controls, fields, links and
    smart tags too, deleted text and text boxes left out (python-docx reads only its direct runs and links)."""
    parts = []
    for element in paragraph.iter(*_W_RUN_TEXT):
        if element.getparent().tag != _W_RUN or inside(element, _W_APART, paragraph):
            continue
        if element.tag == _W_BREAK and element.get(f"{{{W}}}type", "textWrapping") != "textWrapping":
            continue
        parts.append(_W_RUN_TEXT[element.tag] or element.text or "")
    return "".join(parts)


def _docx_blocks(parent: Any, document: Any) -> Iterator[_Block]:
    """The paragraphs and tables under `parent` in order (content controls opened), each text box's own blocks
    after the paragraph or table that holds it."""
    for child in parent.iterchildren(tag=etree.Element):
        tag = etree.QName(child).localname
        if tag in ("p", "tbl"):
            yield _docx_block(child, document)
            for box in _own(child, f"{{{W}}}txbxContent"):
                yield from _docx_blocks(box, document)
        elif tag == "customXml":
            yield from _docx_blocks(child, document)
        elif tag == "sdt" and (content := child.find("w:sdtContent", NS)) is not None:
            yield from _docx_blocks(content, document)


def _docx_block(element: Any, document: Any) -> _Block:
    """A paragraph (w:p) or a table (w:tbl, its cells' text read like paragraphs)."""
    from docx.table import Table

    drawings = _own(element, f"{{{W}}}drawing")
    if etree.QName(element).localname == "p":
        return _Block(_paragraph_text(element).strip(), drawings)
    rows = [
        ["\n".join(_paragraph_text(p) for p in _own(cell._tc, f"{{{W}}}p")).strip() for cell in row.cells]
        for row in Table(element, document).rows
    ]
    return _Block("\n".join(" | ".join(r) for r in rows), drawings, rows)


def _docx_drawing(
    document: Any,
    drawing: Any,
    near: list[str],
    counts: dict[str, int],
    options: ExtractOptions,
    deadline: Deadline,
    warnings: list[str],
    limit: Limit,
) -> list[Item]:
    """The charts and pictures of a drawing (a group or canvas holds several), each within the limit; a graphic
    that is not read is named in a warning."""
    doc_pr = drawing.find(".//wp:docPr", NS)
    graphics = list(itertools.islice(graphics_in(drawing, _W_APART), limit.left + 1))
    caption, label = find_caption([t for t in near if t], table=False)
    items = []
    for graphic in graphics:
        if not limit.take():
            break
        name = doc_pr.get("name", "") if doc_pr is not None and len(graphics) == 1 else graphic.name
        if graphic.kind == "chart":
            find = functools.partial(_related_part, document.part, graphic.element.get(f"{{{R}}}id", ""))
            place = Place(f"chart:{counts['chart']}", name, caption, label)
            item = part_chart_item(find, place, warnings, options.max_unzipped_bytes, deadline)
            counts["chart"] += item is not None
        elif graphic.kind == "picture":
            item = _docx_picture(document, graphic, name, caption, label, counts["figure"], options, warnings)
            counts["figure"] += item is not None
        else:
            warnings.append(f"{name or 'document'}: {graphic.kind} not read")
            item = None
        if item is not None:
            items.append(item)
    return items


def _related_part(part: Any, rid: str) -> Any:
    return part.related_parts[rid]


def _docx_picture(
    document: Any,
    graphic: Graphic,
    name: str,
    caption: str,
    label: str | None,
    i: int,
    options: ExtractOptions,
    warnings: list[str],
) -> Item | None:
    where = name or "document"
    rid = embedded_id(graphic, where, warnings)
    if rid is None:
        return None
    if rid not in document.part.related_parts:
        warnings.append(f"{where}: picture left out: its image part is missing")
        return None
    image_part = document.part.related_parts[rid]
    alt = graphic.alt
    text = " ".join(part for part in (caption, "" if alt in caption else alt) if part)
    place = Place(f"figure:{i}", name or None, caption or alt, label)
    return picture_item(image_part.blob, str(image_part.partname), place, text, options, warnings, where)
