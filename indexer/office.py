"""Word, PowerPoint and Excel files (.docx, .pptx, .xlsx) -> items: text in reading order, tables, pictures and
native charts (their exact data as text, and a picture drawn from it), plus page images when LibreOffice is there.

Hostile files are refused before any parser sees them: a legacy or encrypted (OLE) file, a zip that inflates past
MMRAG_MAX_UNZIPPED_MB, XML with a DTD. Macros are never run: a file that carries them is indexed without them.

Locators: a document's 'chunk:i', 'table:i', 'figure:i', 'chart:i'; a presentation's 'slide:N:chunk:i',
'slide:N:table:i', 'slide:N:figure:i', 'slide:N:chart:i' (page=N); a workbook's 'sheet:K:table:i',
'sheet:K:figure:i', 'sheet:K:chart:i' (K counts the sheets from 1); page renders 'page:N'.
"""

from __future__ import annotations

import functools
import io
import itertools
import posixpath
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree
from PIL import Image

from mmrag.core.errors import one_line
from mmrag.indexer.items import BadFileError, Item
from mmrag.indexer.office_charts import (
    CellReader,
    Chart,
    EmbeddedWorkbook,
    cell_text,
    draw_chart,
    parse_xml,
    read_chart,
    workbook_cells,
)
from mmrag.indexer.reading import Deadline, ExtractOptions, chunk_text, load_image
from mmrag.indexer.tables import markdown_table

OLE_MAGIC = b"\xd0\xcf\x11\xe0"
MAX_MEMBERS = 20_000
"""Parts an Office zip may hold."""
MAX_SHEET_ROWS = 20_000
MAX_SHEET_COLUMNS = 200
ROWS_PER_TABLE = 50

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
WP = "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"
XDR = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PR = "http://schemas.openxmlformats.org/package/2006/relationships"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
NS = {
    "w": W,
    "wp": WP,
    "xdr": XDR,
    "r": R,
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
    "c": "http://schemas.openxmlformats.org/drawingml/2006/chart",
    "pic": "http://schemas.openxmlformats.org/drawingml/2006/picture",
    "pr": PR,
    "s": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
}
_UNREAD_GRAPHICS = {
    "http://schemas.microsoft.com/office/drawing/2014/chartex": "Office 2016 chart (chartex)",
    "http://schemas.openxmlformats.org/drawingml/2006/diagram": "SmartArt diagram",
}
"""Graphics (by a:graphicData uri) whose content is not read: each is named in a warning."""
_NAMES = {".docx": "Word document", ".pptx": "PowerPoint presentation", ".xlsx": "Excel workbook"}
_MACRO_SUFFIXES = {".docx": ".docm", ".pptx": ".pptm", ".xlsx": ".xlsm"}


def office_items(
    path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str], notes: list[str]
) -> list[Item]:
    """The items of a .docx, .pptx or .xlsx; a file that cannot be read safely raises BadFileError (its reason)."""
    suffix = path.suffix.lower()
    check_package(path, options, deadline, warnings)
    readers: dict[str, Callable[[Path, ExtractOptions, Deadline, list[str]], list[Item]]] = {
        ".docx": docx_items,
        ".pptx": pptx_items,
        ".xlsx": xlsx_items,
    }
    try:
        items = readers[suffix](path, options, deadline, warnings)
    except BadFileError:
        raise
    except Exception as e:  # python-docx/pptx/openpyxl raise many types on a corrupt package
        raise BadFileError(_library_reason(e, suffix)) from e
    if options.office_pages:
        from mmrag.indexer.convert import office_pages

        pages = office_pages(path, options, deadline, warnings, notes)
        if suffix == ".pptx":
            _number_by_slide(pages, _shown_slides(path))
        link_pages(items, pages, by_slide=suffix == ".pptx")
        items += pages
    return items


_CONTENT_TYPES = "[content_types].xml"


class _DtdFoundError(Exception):
    """The parser met a DTD: the part is refused."""


class _NoTree:
    """An lxml parser target that builds nothing, so that a part of any size is checked at the parser's own speed
    in constant memory; it stops at a DTD as soon as the parser meets one (before any declaration in it)."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _DtdFoundError

    def close(self) -> None:
        return None


class _ContentTypes(_NoTree):
    """[Content_Types].xml checked like any part while it says which of the zip's parts are XML: by name
    (Override) or else by extension (Default), a content type ending in 'xml'. Only names and extensions the zip
    holds are kept."""

    def __init__(self, names: set[str]) -> None:
        self.names, self.extensions = names, {_extension(name) for name in names}
        self.defaults: dict[str, bool] = {}
        self.overrides: dict[str, bool] = {}

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        xml = attrib.get("ContentType", "").strip().lower().endswith("xml")
        kind = tag.rpartition("}")[2]
        if kind == "Default" and (extension := attrib.get("Extension", "").lower()) in self.extensions:
            self.defaults[extension] = xml
        elif kind == "Override" and (name := attrib.get("PartName", "").lstrip("/").lower()) in self.names:
            self.overrides[name] = xml

    def is_xml(self, name: str) -> bool:
        """Named .xml or .rels, or given an XML content type."""
        name = name.lower()
        return name.endswith((".xml", ".rels")) or self.overrides.get(name, self.defaults.get(_extension(name), False))


def _extension(name: str) -> str:
    return posixpath.splitext(name)[1].lstrip(".")


def _check_xml(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: _NoTree, deadline: Deadline) -> None:
    """Reads one part through `target` as a stream (64 KiB at a time, the deadline checked between them); a part
    that declares a DTD or is broken is a BadFileError naming it."""
    parser = etree.XMLParser(target=target, resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        with archive.open(member) as stream:
            while chunk := stream.read(1 << 16):
                deadline.check()
                parser.feed(chunk)
        parser.close()
    except _DtdFoundError as e:
        raise BadFileError(f"{member.filename} declares a DTD (refused: entity expansion)") from e
    except etree.XMLSyntaxError as e:
        raise BadFileError(f"broken XML in {member.filename}: {one_line(e.msg or str(e))}") from e


def check_package(path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str]) -> None:
    """Refuse what is not a safe Office zip: OLE (legacy or encrypted), not a zip, a zip bomb, XML with a DTD or
    broken XML (naming the part); warn when it carries macros (never run)."""
    with path.open("rb") as f:
        head = f.read(8)
        ole = head.startswith(OLE_MAGIC)
        encrypted = ole and "EncryptionInfo".encode("utf-16-le") in f.read(8 << 20)
    if ole:
        if encrypted:
            raise BadFileError("encrypted Office file (password required)")
        raise BadFileError("legacy binary Office format (.doc/.ppt/.xls) is not read: save it as .docx/.pptx/.xlsx")
    if not zipfile.is_zipfile(path):
        if head.startswith(b"PK"):
            raise BadFileError("corrupt or truncated zip archive (its table of contents is missing)")
        raise BadFileError("not an Office file (not a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise BadFileError(f"zip holds {len(members)} parts (more than {MAX_MEMBERS}): refused")
            total = sum(m.file_size for m in members)
            if total > options.max_unzipped_bytes:
                raise BadFileError(
                    f"unpacks to {total / 2**20:.1f} MB, more than {options.max_unzipped_bytes / 2**20:g} MB "
                    "(MMRAG_MAX_UNZIPPED_MB): possible zip bomb"
                )
            types = _ContentTypes({member.filename.lower() for member in members})
            for member in members:
                if member.filename.lower() == _CONTENT_TYPES:
                    _check_xml(archive, member, types, deadline)
            for member in members:
                name = member.filename
                if name.lower().endswith("vbaproject.bin"):
                    warnings.append("contains macros (never run)")
                if name.lower() != _CONTENT_TYPES and not member.is_dir() and types.is_xml(name):
                    _check_xml(archive, member, _NoTree(), deadline)
    except zipfile.BadZipFile as e:
        raise BadFileError(f"corrupt or truncated zip archive: {one_line(str(e))}") from e
    except (EOFError, zipfile.LargeZipFile, NotImplementedError) as e:
        raise BadFileError(f"corrupt or truncated zip archive: {_reason(e)}") from e


def _library_reason(error: Exception, suffix: str) -> str:
    what = _NAMES[suffix]
    detail = one_line(str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error))
    if "macroEnabled" in detail:
        return f"macro-enabled {what} ({_MACRO_SUFFIXES[suffix]} content under a {suffix} name) is not read"
    if isinstance(error, KeyError):
        return f"corrupt {what}: missing part ({detail})"
    return f"corrupt {what}: {type(error).__name__}{': ' + detail if detail else ''}"


class _Budget:
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


class _Limit:
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


def _reason(error: BaseException) -> str:
    if isinstance(error, BadFileError):
        return str(error)
    detail = one_line(str(error))
    return f"{type(error).__name__}{': ' + detail if detail else ''}"


def _image(blob: bytes, name: str, options: ExtractOptions, warnings: list[str], where: str) -> Image.Image | None:
    """An embedded picture, within the bounds of every image (pixels, aspect ratio, long side); None (and a
    warning) when it cannot be read."""
    try:
        return load_image(io.BytesIO(blob), options.max_pixels, options.max_aspect_ratio, options.keep_long_side)
    except Exception as e:  # a picture that cannot be read (EMF, corrupt, too large) costs that picture
        warnings.append(f"{where}: picture {name} left out: {_reason(e)}")
        return None


def _chart_item(
    xml: bytes,
    part: str,
    cells: CellReader | None,
    locator: str,
    shape: str,
    caption: str,
    label: str | None,
    page: int | None,
    warnings: list[str],
) -> Item | None:
    """A chart's data as text with a picture drawn from it; its data alone (a text item) when it cannot be drawn,
    and None when it cannot be read (each with a warning)."""
    try:
        chart: Chart = read_chart(xml, part, cells)
        text = chart.text()
    except Exception as e:  # a chart that cannot be read costs that chart
        warnings.append(f"{shape or part}: chart data not read: {_reason(e)}")
        return None
    if caption and (not chart.title or chart.title not in caption):
        text = f"{caption}\n{text}"
    item = Item(
        kind="image",
        locator=locator,
        text=text,
        page=page,
        label=label,
        caption=caption or chart.title or None,
        origin="chart-data",
        shape=shape,
    )
    try:
        item.image = draw_chart(chart)
    except Exception as e:  # matplotlib failing on what a chart holds costs its picture, not its data
        warnings.append(f"{shape or part}: chart picture not drawn: {_reason(e)}")
        item.kind = "text"
    return item


def _caption(candidates: list[str], table: bool) -> tuple[str, str | None]:
    """The first of the neighbouring paragraphs that is a figure's (table's) caption: (text, label)."""
    from mmrag.indexer.captions import caption_label

    for text in candidates:
        label = caption_label(text)
        if label is not None and label.strong and label.table == table:
            return text, label.text
    return "", None


def _part_chart_item(
    find: Callable[[], Any],
    locator: str,
    shape: str,
    caption: str,
    label: str | None,
    page: int | None,
    warnings: list[str],
    max_unzipped_bytes: int,
) -> Item | None:
    """The chart item of a python-docx / python-pptx chart part (`find` gives it), with its embedded workbook at
    hand for references without a cache (opened only then, within the package's limits); None (and a warning)
    when it cannot be read."""
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
        warnings.append(f"{shape or locator}: chart left out: {_reason(e)}")
        return None
    book = EmbeddedWorkbook(workbook, MAX_MEMBERS, max_unzipped_bytes, warnings, shape or locator) if workbook else None
    try:
        part = str(chart.partname).lstrip("/")
        cells = book.read if book is not None else None
        return _chart_item(chart.blob, part, cells, locator, shape, caption, label, page, warnings)
    finally:
        if book is not None:
            book.close()


_FALLBACK = f"{{{MC}}}Fallback"
_CHART, _BLIP, _GRAPHIC_DATA = f"{{{NS['c']}}}chart", f"{{{NS['a']}}}blip", f"{{{NS['a']}}}graphicData"


@dataclass
class _Graphic:
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
        found = (props.get("descr") or props.get("title") or "" for props in self.names)
        return " ".join(next((text for text in found if text.strip()), "").split())


def _inside(element: Any, tags: frozenset[str], root: Any) -> bool:
    """Whether an element lies inside one of `tags` below `root`."""
    for ancestor in element.iterancestors():
        if ancestor is root:
            return False
        if ancestor.tag in tags:
            return True
    return False


def _graphics(root: Any, skip: frozenset[str] = frozenset({_FALLBACK})) -> Iterator[_Graphic]:
    """The charts, pictures and unread graphics (Office 2016 charts, SmartArt) in a drawing, slide or group, in
    document order; none inside `skip` (an mc:Fallback repeats its mc:Choice)."""
    for element in root.iter(_CHART, _BLIP, _GRAPHIC_DATA):
        if _inside(element, skip, root):
            continue
        if element.tag == _CHART:
            kind = "chart"
        elif element.tag == _BLIP:
            kind = "picture"
        elif (unread := _UNREAD_GRAPHICS.get(element.get("uri", ""))) is not None:
            kind = unread
        else:
            continue
        yield _Graphic(kind, element, _names(element, root))


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


def _embedded(graphic: _Graphic, where: str, warnings: list[str]) -> str | None:
    """The relationship id of a picture's embedded image; None (and a warning) for a picture linked to a file."""
    rid = graphic.element.get(f"{{{R}}}embed")
    if rid is None and graphic.element.get(f"{{{R}}}link"):
        warnings.append(f"{where}: picture left out: linked to a file, not embedded")
    return rid


# ------------------------------------------------------------------------------------------------------------ docx


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
    budget = _Budget(options.max_text_bytes, warnings)
    table_budget = _Budget(options.max_text_bytes, warnings, "table text")
    limit = _Limit(
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
            caption, label = _caption([before, after], table=True)
            for markdown in _table_parts(block.rows, options.chunk_size * 8):
                if not (markdown := table_budget.take(markdown)):
                    break
                items.append(
                    Item(
                        kind="table",
                        locator=f"table:{counts['table']}",
                        text=f"{caption}\n{markdown}".strip(),
                        label=label,
                        caption=caption or None,
                    )
                )
                counts["table"] += 1
        for drawing in block.drawings:
            items += _docx_drawing(document, drawing, [block.text, after, before], counts, options, warnings, limit)
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
_W_APART = frozenset({f"{{{W}}}del", f"{{{W}}}moveFrom", f"{{{W}}}txbxContent", _FALLBACK})
"""What a paragraph's own text and drawings leave out: deleted (or moved away) runs, a copy of an mc:Choice, and
text boxes (read as blocks of their own)."""


def _own(element: Any, tag: str) -> list[Any]:
    """The `tag` elements inside an element, leaving out what lies in _W_APART."""
    return [found for found in element.iter(tag) if not _inside(found, _W_APART, element)]


def _paragraph_text(paragraph: Any) -> str:
    """A paragraph's text as Word shows it: the runs in tracked insertions, content controls, fields, links and
    smart tags too, deleted text and text boxes left out (python-docx reads only its direct runs and links)."""
    parts = []
    for element in paragraph.iter(*_W_RUN_TEXT):
        if element.getparent().tag != _W_RUN or _inside(element, _W_APART, paragraph):
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
    warnings: list[str],
    limit: _Limit,
) -> list[Item]:
    """The charts and pictures of a drawing (a group or canvas holds several), each within the limit; a graphic
    that is not read is named in a warning."""
    doc_pr = drawing.find(".//wp:docPr", NS)
    graphics = list(itertools.islice(_graphics(drawing, _W_APART), limit.left + 1))
    caption, label = _caption([t for t in near if t], table=False)
    items = []
    for graphic in graphics:
        if not limit.take():
            break
        name = doc_pr.get("name", "") if doc_pr is not None and len(graphics) == 1 else graphic.name
        if graphic.kind == "chart":
            find = functools.partial(_related_part, document.part, graphic.element.get(f"{{{R}}}id", ""))
            item = _part_chart_item(
                find, f"chart:{counts['chart']}", name, caption, label, None, warnings, options.max_unzipped_bytes
            )
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
    graphic: _Graphic,
    name: str,
    caption: str,
    label: str | None,
    i: int,
    options: ExtractOptions,
    warnings: list[str],
) -> Item | None:
    where = name or "document"
    rid = _embedded(graphic, where, warnings)
    if rid is None:
        return None
    if rid not in document.part.related_parts:
        warnings.append(f"{where}: picture left out: its image part is missing")
        return None
    image_part = document.part.related_parts[rid]
    image = _image(image_part.blob, str(image_part.partname), options, warnings, where)
    if image is None:
        return None
    alt = graphic.alt
    text = " ".join(part for part in (caption, "" if alt in caption else alt) if part)
    return Item(
        kind="image",
        locator=f"figure:{i}",
        text=text,
        image=image,
        label=label,
        caption=caption or alt or None,
        shape=name or None,
    )


# ------------------------------------------------------------------------------------------------------------ pptx


def pptx_items(path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str]) -> list[Item]:
    """Per slide: its title, then its other text top-to-bottom and left-to-right (groups opened), then its notes;
    its tables, pictures and charts."""
    from pptx import Presentation

    presentation = Presentation(str(path))
    budget = _Budget(options.max_text_bytes, warnings)
    table_budget = _Budget(options.max_text_bytes, warnings, "table text")
    items: list[Item] = []
    for number, slide in enumerate(presentation.slides, start=1):
        deadline.check()
        items += _slide_items(slide, number, options, deadline, warnings, (budget, table_budget))
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
    budgets: tuple[_Budget, _Budget],
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
        if getattr(shape, "has_table", False) and shape.has_table:
            rows = [[cell.text.strip() for cell in row.cells] for row in shape.table.rows]
            lines.append("\n".join(" | ".join(r) for r in rows))
            for markdown in _table_parts(rows, options.chunk_size * 8):
                if not (markdown := table_budget.take(markdown)):
                    break
                items.append(
                    Item(
                        kind="table",
                        locator=f"slide:{number}:table:{counts['table']}",
                        page=number,
                        text=f"{title}\n{markdown}".strip(),
                        caption=title or None,
                        shape=shape.name,
                    )
                )
                counts["table"] += 1
        elif getattr(shape, "has_chart", False) and shape.has_chart:
            locator = f"slide:{number}:chart:{counts['chart']}"
            find = functools.partial(getattr, shape, "chart_part")
            item = _part_chart_item(find, locator, shape.name, "", None, number, warnings, options.max_unzipped_bytes)
            if item is not None:
                items.append(item)
                counts["chart"] += 1
        elif isinstance(shape, Picture) and (
            item := _slide_picture(shape, number, counts["figure"], title, options, warnings)
        ):
            items.append(item)
            counts["figure"] += 1
    unread = (g for g in _graphics(slide._element) if g.kind not in ("chart", "picture"))
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
        warnings.append(f"slide {number}: {shape.name}: picture left out: {_reason(e)}")
        return None
    image = _image(blob, name, options, warnings, f"slide {number}")
    if image is None:
        return None
    c_nv_pr = shape._element.find(".//{*}cNvPr")
    alt = " ".join((c_nv_pr.get("descr") or c_nv_pr.get("title") or "").split()) if c_nv_pr is not None else ""
    caption = alt or title
    return Item(
        kind="image",
        locator=f"slide:{number}:figure:{i}",
        text=caption,
        image=image,
        page=number,
        caption=caption or None,
        shape=shape.name,
    )


# ------------------------------------------------------------------------------------------------------------ xlsx


def xlsx_items(path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str]) -> list[Item]:
    """Each sheet's used cells as Markdown tables of ~50 rows (the header row repeated), its pictures and charts
    (references without a cache read from the workbook's cached cell values)."""
    cells, close = workbook_cells(str(path))
    try:
        from openpyxl import load_workbook

        book = load_workbook(str(path), read_only=True, data_only=True)
        try:
            budget = _Budget(options.max_text_bytes, warnings)
            items: list[Item] = []
            with zipfile.ZipFile(path) as archive:
                sheet_parts = _sheet_parts(archive)
                for k, name in enumerate(book.sheetnames, start=1):  # worksheets and chart sheets, in order
                    deadline.check()
                    sheet = book[name]
                    if hasattr(sheet, "iter_rows"):
                        items += _sheet_tables(sheet, k, options, deadline, warnings, budget)
                    if (part := sheet_parts.get(name)) is not None:
                        items += _sheet_drawings(archive, part, name, k, cells, options, deadline, warnings)
            return items
        finally:
            book.close()
    finally:
        close()


def _sheet_tables(
    sheet: Any, k: int, options: ExtractOptions, deadline: Deadline, warnings: list[str], budget: _Budget
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


def _rels(archive: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """rId -> (relationship type, target part name) of a part (its _rels/NAME.rels), internal targets only."""
    folder, name = posixpath.split(part)
    rels_name = posixpath.join(folder, "_rels", name + ".rels")
    if rels_name not in archive.namelist():
        return {}
    found = {}
    for rel in parse_xml(archive.read(rels_name), rels_name).findall("pr:Relationship", NS):
        if rel.get("TargetMode") == "External":
            continue
        target = rel.get("Target", "")
        resolved = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
        found[rel.get("Id", "")] = (rel.get("Type", ""), resolved)
    return found


def _sheet_parts(archive: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> its worksheet part."""
    book = "xl/workbook.xml"
    rels = _rels(archive, book)
    sheets = parse_xml(archive.read(book), book).findall("s:sheets/s:sheet", NS)
    return {s.get("name", ""): rels[s.get(f"{{{R}}}id", "")][1] for s in sheets if s.get(f"{{{R}}}id", "") in rels}


def _sheet_drawings(
    archive: zipfile.ZipFile,
    part: str,
    title: str,
    k: int,
    cells: CellReader,
    options: ExtractOptions,
    deadline: Deadline,
    warnings: list[str],
) -> list[Item]:
    """The charts and pictures of a sheet's drawings (every one of a group), within the limit; a graphic that is
    not read is named in a warning."""
    items: list[Item] = []
    counts = {"figure": 0, "chart": 0}
    members = set(archive.namelist())
    limit = _Limit(
        options.max_page_objects,
        warnings,
        f'sheet "{title}": more than {options.max_page_objects} drawings; the rest left out (MMRAG_MAX_PAGE_OBJECTS)',
    )
    for kind, drawing in _rels(archive, part).values():
        if not kind.endswith("/drawing") or drawing not in members:
            continue
        targets = _rels(archive, drawing)
        for graphic in _graphics(parse_xml(archive.read(drawing), drawing)):
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
                else _embedded(graphic, where, warnings)
            )
            if rid is None:
                continue
            if (target := targets.get(rid, ("", ""))[1]) not in members:
                warnings.append(f"{where}: {graphic.kind} left out: its part is missing")
                continue
            if graphic.kind == "chart":
                shape = f'Sheet "{title}": {graphic.name}'
                locator = f"sheet:{k}:chart:{counts['chart']}"
                item = _chart_item(archive.read(target), target, cells, locator, shape, "", None, None, warnings)
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
    graphic: _Graphic,
    title: str,
    k: int,
    i: int,
    options: ExtractOptions,
    warnings: list[str],
) -> Item | None:
    image = _image(archive.read(member), member, options, warnings, f'sheet "{title}"')
    if image is None:
        return None
    alt = graphic.alt
    return Item(
        kind="image",
        locator=f"sheet:{k}:figure:{i}",
        text=alt,
        image=image,
        caption=alt or None,
        shape=f'Sheet "{title}": {graphic.name}',
    )


# ----------------------------------------------------------------------------------------------------------- pages


def _shown_slides(path: Path) -> list[int]:
    """The numbers of the slides a presentation shows, in order: LibreOffice prints no hidden slide."""
    from pptx import Presentation

    slides = Presentation(str(path)).slides
    return [number for number, slide in enumerate(slides, start=1) if slide._element.get("show") not in ("0", "false")]


def _number_by_slide(pages: list[Item], shown: list[int]) -> None:
    """Renumber a presentation's printed pages by the slide each one is (page 2 is slide 3 when slide 2 is hidden),
    so a slide's objects and its image share their number."""
    for page in pages:
        if page.page is not None and page.page <= len(shown):
            page.page = shown[page.page - 1]
            page.locator = f"page:{page.page}"


def link_pages(items: list[Item], pages: list[Item], by_slide: bool) -> None:
    """Give items the page they are printed on: a slide's own number, else the first page whose text holds the
    start of the item's own words (whitespace-normalized); then cut each page's text to 1000 characters."""
    if not by_slide:
        texts = [(page.page, " ".join(page.text.split())) for page in pages]
        for item in items:
            probe = " ".join(_probe(item).split())[:60]
            if item.page is None and probe:
                item.page = next((number for number, text in texts if probe in text), None)
    for page in pages:
        page.text = page.text[:1000]


def _probe(item: Item) -> str:
    """The start of what the item shows as printed text: a chunk's words, a caption, a table's first row, a
    chart's title."""
    if item.kind == "text":
        return item.text
    if item.caption and not item.caption.startswith('Sheet "'):
        return item.caption
    if item.kind == "table":  # its first row under the header (a long sheet's tables repeat the header)
        rows = [line for line in item.text.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
        first = rows[1] if len(rows) > 1 else rows[0] if rows else ""
        return " ".join(cell.strip() for cell in first.strip("| ").split(" | ") if cell.strip())
    return ""
