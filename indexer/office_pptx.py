"""PowerPoint presentations (.pptx) -> items: each slide's text in reading order (title first, notes last), its
tables, pictures and native charts, all numbered by their slide."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Any

from mmrag.indexer.items import Item
from mmrag.indexer.office_objects import (
    Budget,
    Place,
    alt_text,
    graphics_in,
    part_chart_item,
    picture_item,
    table_items,
)
from mmrag.indexer.office_package import reason
from mmrag.indexer.reading import Deadline, ExtractOptions, chunk_text


def pptx_items(
    path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str], shown: list[int]
) -> list[Item]:
    """Per slide: its title, then its other text top-to-bottom and left-to-right (groups opened), then its notes;
    its tables, pictures and charts. The numbers of the slides the presentation shows (not hidden) are added to
    `shown`, in order: LibreOffice prints no hidden slide."""
    from pptx import Presentation

    presentation = Presentation(str(path))
    budget = Budget(options.max_text_bytes, warnings)
    table_budget = Budget(options.max_text_bytes, warnings, "table text")
    items: list[Item] = []
    for number, slide in enumerate(presentation.slides, start=1):
        deadline.check()
        items += _slide_items(slide, number, options, deadline, warnings, (budget, table_budget))
        if slide._element.get("show") not in ("0", "false"):
            shown.append(number)
    return items


def _slide_shapes(shapes: Any, limit: int) -> list[Any]:
    """Shapes in reading order (top to bottom, then left to right), groups opened, at most `limit` of them."""
    from pptx.shapes.group import GroupShape

    found: list[Any] = []

    def walk(group: Any) -> None:
        for shape in sorted(group, key=lambda s: (s.top or 0, s.left or 0)):
            if len(found) >= limit:
                return
            if isinstance(shape, GroupShape):
                walk(shape.shapes)
            else:
                found.append(shape)

    walk(shapes)
    return found


def _slide_items(
    slide: Any,
    number: int,
    options: ExtractOptions,
    deadline: Deadline,
    warnings: list[str],
    budgets: tuple[Budget, Budget],
) -> list[Item]:
    """A slide's text chunks, then its tables, charts and pictures; `budgets` bound its text and its tables'."""
    from pptx.shapes.picture import Picture

    budget, table_budget = budgets
    title_shape = slide.shapes.title
    title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
    shapes = _slide_shapes(slide.shapes, options.max_page_objects + 1)
    if len(shapes) > options.max_page_objects:
        warnings.append(
            f"slide {number}: more than {options.max_page_objects} shapes; the rest left out (MMRAG_MAX_PAGE_OBJECTS)"
        )
        shapes = shapes[: options.max_page_objects]
    lines = [title] if title else []
    items: list[Item] = []
    counts = {"table": 0, "figure": 0, "chart": 0}
    for shape in shapes:
        deadline.check()
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if shape.has_text_frame and shape.text_frame.text.strip():
            lines.append(shape.text_frame.text.strip())
        if shape.has_table:
            rows = [[cell.text.strip() for cell in row.cells] for row in shape.table.rows]
            lines.append("\n".join(" | ".join(r) for r in rows))
            place = Place(f"slide:{number}:table", shape.name, title, page=number)
            tables = table_items(rows, options.chunk_size * 8, table_budget, place, counts["table"])
            items += tables
            counts["table"] += len(tables)
        elif shape.has_chart:
            place = Place(f"slide:{number}:chart:{counts['chart']}", shape.name, page=number)
            find = functools.partial(getattr, shape, "chart_part")
            item = part_chart_item(find, place, warnings, options.max_unzipped_bytes, deadline)
            if item is not None:
                items.append(item)
                counts["chart"] += 1
        elif isinstance(shape, Picture) and (
            item := _slide_picture(shape, number, counts["figure"], title, options, warnings)
        ):
            items.append(item)
            counts["figure"] += 1
    unread = (g for g in graphics_in(slide._element) if g.kind not in ("chart", "picture"))
    for graphic in itertools.islice(unread, options.max_page_objects):
        warnings.append(f"slide {number}: {graphic.name or 'a graphic'}: {graphic.kind} not read")
    if slide.has_notes_slide and (notes := slide.notes_slide.notes_text_frame) is not None and notes.text.strip():
        lines.append(f"Notes: {notes.text.strip()}")
    text = budget.take("\n".join(lines))
    chunks = [
        Item(kind="text", locator=f"slide:{number}:chunk:{i}", text=chunk, page=number, chunk=i)
        for i, chunk in enumerate(chunk_text(text, options))
    ]
    return chunks + items


def _slide_picture(
    shape: Any, number: int, i: int, title: str, options: ExtractOptions, warnings: list[str]
) -> Item | None:
    try:
        blob, name = shape.image.blob, shape.image.filename or "image"
    except ValueError:  # python-pptx: no r:embed
        warnings.append(f"slide {number}: {shape.name}: picture left out: linked to a file, not embedded")
        return None
    except (AttributeError, KeyError) as e:  # a dangling reference, a part that is not an image
        warnings.append(f"slide {number}: {shape.name}: picture left out: {reason(e)}")
        return None
    c_nv_pr = shape._element.find(".//{*}cNvPr")
    caption = alt_text([c_nv_pr] if c_nv_pr is not None else []) or title
    place = Place(f"slide:{number}:figure:{i}", shape.name, caption, page=number)
    return picture_item(blob, name, place, caption, options, warnings, f"slide {number}")
