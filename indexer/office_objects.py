"""What the .docx, .pptx and .xlsx readers share: text budgets and object limits, tables split to size, pictures,
native chart items, and the charts, pictures and unread graphics found in a drawing."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from lxml import etree

from mmrag.indexer.captions import caption_of
from mmrag.indexer.chart_drawing import draw_chart
from mmrag.indexer.items import Item
from mmrag.indexer.office_charts import A, C, CellReader, Chart, EmbeddedWorkbook, read_chart
from mmrag.indexer.office_package import reason
from mmrag.indexer.reading import Deadline, ExtractOptions, TimeLimitError, load_image
from mmrag.indexer.tables import markdown_table

R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_CHART, _BLIP, _GRAPHIC_DATA = f"{{{C}}}chart", f"{{{A}}}blip", f"{{{A}}}graphicData"
_UNREAD_GRAPHICS = {
    "http://schemas.microsoft.com/office/drawing/2014/chartex": "Office 2016 chart (chartex)",
    "http://schemas.openxmlformats.org/drawingml/2006/diagram": "SmartArt diagram",
}
"""Graphics (by a:graphicData uri) whose content is not read: each is named in a warning."""


class Budget:
    """Text read per file (MMRAG_MAX_TEXT_MB): `take` gives what still fits, and warns once when it cuts."""

    def __init__(self, limit: int, warnings: list[str], what: str = "text") -> None:
        self.left, self.limit, self.warnings, self.cut, self.what = limit, limit, warnings, False, what

    def take(self, text: str) -> str:
        if len(text) <= self.left:
            self.left -= len(text)
            return text
        if not self.cut:
            self.warnings.append(f"{self.what} after the first {self.limit} characters not indexed (MMRAG_MAX_TEXT_MB)")
            self.cut = True
        kept, self.left = text[: self.left], 0
        return kept


class Limit:
    """Objects read per document, slide or sheet (MMRAG_MAX_PAGE_OBJECTS): `take` says whether one more fits,
    and warns once when the first one does not."""

    def __init__(self, limit: int, warnings: list[str], warning: str) -> None:
        self.left, self.warnings, self.warning, self.full = limit, warnings, warning, False

    def take(self) -> bool:
        if self.left > 0:
            self.left -= 1
            return True
        if not self.full:
            self.warnings.append(self.warning)
            self.full = True
        return False


@dataclass(frozen=True)
class Place:
    """Where an object stands in its file and what names it: its locator, its shape's name, its caption (and
    label) and its page (a slide's number)."""

    locator: str
    shape: str | None = None
    caption: str = ""
    label: str | None = None
    page: int | None = None


def table_items(rows: list[list[str]], max_chars: int, budget: Budget, place: Place, first: int) -> list[Item]:
    """A table as table items of at most `max_chars` characters (a long table split, its header row atop each
    part) while `budget` lasts, each under its caption; located '{place.locator}:{first}', then first + 1..."""
    items: list[Item] = []
    for markdown in _table_parts(rows, max_chars):
        if not (markdown := budget.take(markdown)):
            break
        items.append(
            Item(
                kind="table",
                locator=f"{place.locator}:{first + len(items)}",
                text=f"{place.caption}\n{markdown}".strip(),
                label=place.label,
                caption=place.caption or None,
                page=place.page,
                shape=place.shape,
            )
        )
    return items


def _table_parts(rows: list[list[str]], max_chars: int) -> list[str]:
    """A table as Markdown tables of at most `max_chars` characters, its header row atop each: a long table is
    split, never cut (a row longer than the limit is a table of its own)."""
    if not rows:
        return []
    parts, start = [], 1
    while True:
        markdown = markdown_table([rows[0], *rows[start : start + max_chars // 4 + 1]], max_chars)
        taken = markdown.count("\n") - 1
        if taken == 0 and start < len(rows):
            markdown, taken = markdown_table([rows[0], rows[start]]), 1
        parts.append(markdown)
        start += taken
        if start >= len(rows):
            return parts


def picture_item(
    blob: bytes, name: str, place: Place, text: str, options: ExtractOptions, warnings: list[str], where: str
) -> Item | None:
    """An embedded picture as an image item, within the bounds of every image (pixels, aspect ratio, long side);
    None (and a warning under `where`) when it cannot be read."""
    try:
        image = load_image(io.BytesIO(blob), options.max_pixels, options.max_aspect_ratio, options.keep_long_side)
    except Exception as e:  # a picture that cannot be read (EMF, corrupt, too large) costs that picture
        warnings.append(f"{where}: picture {name} left out: {reason(e)}")
        return None
    return Item(
        kind="image",
        locator=place.locator,
        text=text,
        image=image,
        page=place.page,
        label=place.label,
        caption=place.caption or None,
        shape=place.shape,
    )


def chart_item(
    xml: bytes,
    part: str,
    cells: CellReader | None,
    place: Place,
    warnings: list[str],
) -> Item | None:
    """A chart's data as text with a picture drawn from it; its data alone (a text item) when it cannot be drawn,
    and None when it cannot be read (each with a warning)."""
    try:
        chart: Chart = read_chart(xml, part, cells)
        text = chart.text()
    except TimeLimitError:  # the file's deadline (met reading an embedded workbook) fails the file
        raise
    except Exception as e:  # a chart that cannot be read costs that chart
        warnings.append(f"{place.shape or part}: chart data not read: {reason(e)}")
        return None
    if place.caption and (not chart.title or chart.title not in place.caption):
        text = f"{place.caption}\n{text}"
    item = Item(
        kind="image",
        locator=place.locator,
        text=text,
        page=place.page,
        label=place.label,
        caption=place.caption or chart.title or None,
        origin="chart-data",
        shape=place.shape,
    )
    try:
        item.image = draw_chart(chart)
    except Exception as e:  # matplotlib failing on what a chart holds costs its picture, not its data
        warnings.append(f"{place.shape or part}: chart picture not drawn: {reason(e)}")
        item.kind = "text"
    return item


def find_caption(candidates: list[str], table: bool) -> tuple[str, str | None]:
    """The first of the neighbouring paragraphs that is a figure's (table's) caption: (text, label)."""
    for text in candidates:
        if (label := caption_of(text, table)) is not None:
            return text, label.text
    return "", None


def part_chart_item(
    find: Callable[[], Any], place: Place, warnings: list[str], max_unzipped_bytes: int, deadline: Deadline
) -> Item | None:
    """The chart item of a python-docx / python-pptx chart part (`find` gives it), with its embedded workbook at
    hand for references without a cache (opened only then, within the package's limits and the file's
    deadline); None (and a warning) when it cannot be read."""
    try:
        chart = find()
        workbook = next(
            (
                rel.target_part.blob
                for rel in chart.rels.values()
                if not rel.is_external and rel.reltype.endswith("/package")
            ),
            None,
        )
    except (KeyError, AttributeError, ValueError) as e:  # a dangling reference, a part that is not a chart
        warnings.append(f"{place.shape or place.locator}: chart left out: {reason(e)}")
        return None
    where = place.shape or place.locator
    book = EmbeddedWorkbook(workbook, max_unzipped_bytes, deadline, warnings, where) if workbook else None
    try:
        part = str(chart.partname).lstrip("/")
        cells = book.read if book is not None else None
        return chart_item(chart.blob, part, cells, place, warnings)
    finally:
        if book is not None:
            book.close()


@dataclass
class Graphic:
    """A chart (c:chart), a picture (a:blip) or a graphic that is not read (a:graphicData) found in a drawing."""

    kind: str
    """'chart', 'picture', or what the unread graphic is ('SmartArt diagram')."""
    element: Any
    names: list[Any]
    """The cNvPr / docPr elements of the object and of the groups and frame around it, the nearest first."""

    @property
    def name(self) -> str:
        return self.names[0].get("name", "") if self.names else ""

    @property
    def alt(self) -> str:
        """The nearest description (alt text) or title, whitespace-normalized."""
        return alt_text(self.names)


def alt_text(names: Iterable[Any]) -> str:
    """The nearest description (alt text) or title of cNvPr / docPr elements (the nearest first),
    whitespace-normalized."""
    found = (props.get("descr") or props.get("title") or "" for props in names)
    return " ".join(next((text for text in found if text.strip()), "").split())


def inside(element: Any, tags: frozenset[str], root: Any) -> bool:
    """Whether an element lies inside one of `tags` below `root`."""
    for ancestor in element.iterancestors():
        if ancestor is root:
            return False
        if ancestor.tag in tags:
            return True
    return False


def graphics_in(root: Any, skip: frozenset[str] = frozenset({FALLBACK})) -> Iterator[Graphic]:
    """The charts, pictures and unread graphics (Office 2016 charts, SmartArt) in a drawing, slide or group, in
    document order; none inside `skip` (an mc:Fallback repeats its mc:Choice)."""
    for element in root.iter(_CHART, _BLIP, _GRAPHIC_DATA):
        if inside(element, skip, root):
            continue
        if element.tag == _CHART:
            kind = "chart"
        elif element.tag == _BLIP:
            kind = "picture"
        elif (unread := _UNREAD_GRAPHICS.get(element.get("uri", ""))) is not None:
            kind = unread
        else:
            continue
        yield Graphic(kind, element, _names(element, root))


def _names(element: Any, root: Any) -> list[Any]:
    """The cNvPr / docPr elements of an object and of the groups and frame around it up to `root`, the nearest
    first."""
    found = []
    node = element
    while node is not None:
        if (props := _own_props(node)) is not None:
            found.append(props)
        node = None if node is root else node.getparent()
    return found


def _own_props(node: Any) -> Any:
    """The cNvPr (or a Word drawing's docPr) that names a shape, picture, frame or group, if it has one."""
    for child in node.iterchildren(tag=etree.Element):
        local = etree.QName(child).localname
        if local in ("cNvPr", "docPr"):
            return child
        if local.startswith("nv") and (props := child.find("{*}cNvPr")) is not None:
            return props
    return None


def embedded_id(graphic: Graphic, where: str, warnings: list[str]) -> str | None:
    """The relationship id of a picture's embedded image; None (and a warning) for a picture linked to a file."""
    rid = graphic.element.get(f"{{{R}}}embed")
    if rid is None and graphic.element.get(f"{{{R}}}link"):
        warnings.append(f"{where}: picture left out: linked to a file, not embedded")
    return rid
