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
    cell_text,
    draw_chart,
    embedded_cells,
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
            for member in members:
                name = member.filename
                if name.lower().endswith((".xml", ".rels")):
                    deadline.check()
                    parse_xml(archive.read(member), name)
                elif name.lower().endswith("vbaproject.bin"):
                    warnings.append("contains macros (never run)")
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

    def __init__(self, limit: int, warnings: list[str]) -> None:
        self.left, self.limit, self.warnings, self.cut = limit, limit, warnings, False

    def take(self, text: str) -> str:
        if len(text) <= self.left:
            self.left -= len(text)
            return text
        if not self.cut:
            self.warnings.append(f"text after the first {self.limit} characters not indexed (MMRAG_MAX_TEXT_MB)")
            self.cut = True
        kept, self.left = text[: self.left], 0
        return kept


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
    try:
        chart: Chart = read_chart(xml, part, cells)
        image = draw_chart(chart)
    except Exception as e:  # a chart that cannot be read costs that chart
        warnings.append(f"{shape or part}: chart data not read: {_reason(e)}")
        return None
    text = chart.text()
    return Item(
        kind="image",
        locator=locator,
        text=f"{caption}\n{text}" if caption and chart.title not in caption else text,
        image=image,
        page=page,
        label=label,
        caption=caption or chart.title or None,
        origin="chart-data",
        shape=shape,
    )


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
) -> Item | None:
    """The chart item of a python-docx / python-pptx chart part (`find` gives it), read with its embedded
    workbook at hand for references without a cache; None (and a warning) when it cannot be read."""
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
    cells, close = embedded_cells(workbook)
    try:
        part = str(chart.partname).lstrip("/")
        return _chart_item(chart.blob, part, cells, locator, shape, caption, label, page, warnings)
    finally:
        close()


# ------------------------------------------------------------------------------------------------------------ docx


@dataclass
class _Block:
    text: str
    drawings: list[Any]
    rows: list[list[str]] | None = None


def docx_items(path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str]) -> list[Item]:
    """Body paragraphs and tables in order as text chunks, each table as a table item, pictures and charts."""
    import docx

    document = docx.Document(str(path))
    budget = _Budget(options.max_text_bytes, warnings)
    blocks = list(_docx_blocks(document.element.body, document))
    body = budget.take("\n".join(b.text for b in blocks if b.text))
    items = [
        Item(kind="text", locator=f"chunk:{i}", text=chunk, chunk=i)
        for i, chunk in enumerate(chunk_text(body, options))
    ]
    texts = [b.text if b.rows is None else "" for b in blocks]
    counts = {"table": 0, "figure": 0, "chart": 0}
    drawings = 0
    for n, block in enumerate(blocks):
        deadline.check()
        before, after = texts[n - 1] if n else "", texts[n + 1] if n + 1 < len(texts) else ""
        if block.rows is not None:
            caption, label = _caption([before, after], table=True)
            markdown = markdown_table(block.rows, options.chunk_size * 8)
            i = counts["table"]
            counts["table"] += 1
            items.append(
                Item(
                    kind="table",
                    locator=f"table:{i}",
                    text=f"{caption}\n{markdown}".strip(),
                    label=label,
                    caption=caption or None,
                )
            )
        for drawing in block.drawings:
            drawings += 1
            if drawings > options.max_page_objects:
                warnings.append(
                    f"more than {options.max_page_objects} pictures; the rest left out (MMRAG_MAX_PAGE_OBJECTS)"
                )
                return items
            if (
                item := _docx_drawing(document, drawing, [block.text, after, before], counts, options, warnings)
            ) is not None:
                items.append(item)
    return items


def _docx_blocks(parent: Any, document: Any) -> Iterator[_Block]:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in parent.iterchildren():
        tag = etree.QName(child).localname
        if tag == "p":
            drawings = child.findall(".//w:drawing", NS)
            yield _Block(Paragraph(child, document).text.strip(), drawings)
        elif tag == "tbl":
            rows = [[cell.text.strip() for cell in row.cells] for row in Table(child, document).rows]
            yield _Block("\n".join(" | ".join(r) for r in rows), child.findall(".//w:drawing", NS), rows)
        elif tag == "sdt":
            content = child.find("w:sdtContent", NS)
            if content is not None:
                yield from _docx_blocks(content, document)


def _docx_drawing(
    document: Any,
    drawing: Any,
    near: list[str],
    counts: dict[str, int],
    options: ExtractOptions,
    warnings: list[str],
) -> Item | None:
    doc_pr = drawing.find(".//wp:docPr", NS)
    name = doc_pr.get("name", "") if doc_pr is not None else ""
    alt = " ".join((doc_pr.get("descr") or doc_pr.get("title") or "").split()) if doc_pr is not None else ""
    caption, label = _caption([t for t in near if t], table=False)
    chart = drawing.find(".//c:chart", NS)
    if chart is not None:
        rid = chart.get(f"{{{R}}}id", "")
        item = _part_chart_item(
            lambda: document.part.related_parts[rid], f"chart:{counts['chart']}", name, caption, label, None, warnings
        )
        counts["chart"] += item is not None
        return item
    blip = drawing.find(".//a:blip", NS)
    rid = blip.get(f"{{{R}}}embed") if blip is not None else None
    if rid is None or rid not in document.part.related_parts:
        return None
    image_part = document.part.related_parts[rid]
    image = _image(image_part.blob, str(image_part.partname), options, warnings, name or "document")
    if image is None:
        return None
    i = counts["figure"]
    counts["figure"] += 1
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
    items: list[Item] = []
    for number, slide in enumerate(presentation.slides, start=1):
        deadline.check()
        items += _slide_items(slide, number, options, deadline, warnings, budget)
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
    slide: Any, number: int, options: ExtractOptions, deadline: Deadline, warnings: list[str], budget: _Budget
) -> list[Item]:
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
            items.append(
                Item(
                    kind="table",
                    locator=f"slide:{number}:table:{counts['table']}",
                    page=number,
                    text=f"{title}\n{markdown_table(rows, options.chunk_size * 8)}".strip(),
                    caption=title or None,
                    shape=shape.name,
                )
            )
            counts["table"] += 1
        elif getattr(shape, "has_chart", False) and shape.has_chart:
            locator = f"slide:{number}:chart:{counts['chart']}"
            find = functools.partial(getattr, shape, "chart_part")
            item = _part_chart_item(find, locator, shape.name, "", None, number, warnings)
            if item is not None:
                items.append(item)
                counts["chart"] += 1
        elif hasattr(shape, "image") and (
            item := _slide_picture(shape, number, counts["figure"], title, options, warnings)
        ):
            items.append(item)
            counts["figure"] += 1
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
    except (AttributeError, KeyError, ValueError):  # a placeholder with no picture, a broken link
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
    rows: list[list[str]] = []
    for r, row in enumerate(sheet.iter_rows(values_only=True, max_col=MAX_SHEET_COLUMNS + 1)):
        if r % 1000 == 999:
            deadline.check()
        if r >= MAX_SHEET_ROWS:
            warnings.append(f'sheet "{sheet.title}": rows after {MAX_SHEET_ROWS} not indexed')
            break
        if len(row) > MAX_SHEET_COLUMNS and any(v is not None for v in row[MAX_SHEET_COLUMNS:]) and not rows:
            warnings.append(f'sheet "{sheet.title}": columns after {MAX_SHEET_COLUMNS} not indexed')
        texts = [cell_text(v) for v in row[:MAX_SHEET_COLUMNS]]
        if any(texts):
            rows.append(texts)
    if not rows:
        return []
    width = max(max((i + 1 for i, t in enumerate(row) if t), default=0) for row in rows)
    rows = [row[:width] for row in rows]
    header, body = rows[0], rows[1:] or [[""] * width]
    items = []
    for i, start in enumerate(range(0, len(body), ROWS_PER_TABLE)):
        caption = f'Sheet "{sheet.title}", rows {start + 2}-{min(start + ROWS_PER_TABLE, len(body)) + 1}'
        markdown = budget.take(markdown_table([header, *body[start : start + ROWS_PER_TABLE]]))
        if not markdown:
            break
        items.append(
            Item(
                kind="table",
                locator=f"sheet:{k}:table:{i}",
                text=f"{caption}\n{markdown}",
                caption=caption,
                shape=f'Sheet "{sheet.title}"',
            )
        )
    return items


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
    items: list[Item] = []
    counts = {"figure": 0, "chart": 0}
    for kind, drawing in _rels(archive, part).values():
        if not kind.endswith("/drawing") or drawing not in archive.namelist():
            continue
        targets = _rels(archive, drawing)
        anchors = list(parse_xml(archive.read(drawing), drawing))
        if len(anchors) > options.max_page_objects:
            warnings.append(
                f'sheet "{title}": more than {options.max_page_objects} drawings; the rest left out '
                "(MMRAG_MAX_PAGE_OBJECTS)"
            )
        for anchor in anchors[: options.max_page_objects]:
            deadline.check()
            c_nv_pr = anchor.find(".//xdr:cNvPr", NS)
            name = c_nv_pr.get("name", "") if c_nv_pr is not None else ""
            chart = anchor.find(".//c:chart", NS)
            blip = anchor.find(".//a:blip", NS)
            if chart is not None and (target := targets.get(chart.get(f"{{{R}}}id", ""))) is not None:
                locator = f"sheet:{k}:chart:{counts['chart']}"
                item = _chart_item(
                    archive.read(target[1]),
                    target[1],
                    cells,
                    locator,
                    f'Sheet "{title}": {name}',
                    "",
                    None,
                    None,
                    warnings,
                )
                counts["chart"] += item is not None
            elif blip is not None and (target := targets.get(blip.get(f"{{{R}}}embed", ""))) is not None:
                item = _sheet_picture(archive, target[1], c_nv_pr, title, k, counts["figure"], options, warnings)
                counts["figure"] += item is not None
            else:
                continue
            if item is not None:
                items.append(item)
    return items


def _sheet_picture(
    archive: zipfile.ZipFile,
    member: str,
    c_nv_pr: Any,
    title: str,
    k: int,
    i: int,
    options: ExtractOptions,
    warnings: list[str],
) -> Item | None:
    image = _image(archive.read(member), member, options, warnings, f'sheet "{title}"')
    if image is None:
        return None
    name = c_nv_pr.get("name", "") if c_nv_pr is not None else ""
    alt = " ".join((c_nv_pr.get("descr") or c_nv_pr.get("title") or "").split()) if c_nv_pr is not None else ""
    return Item(
        kind="image",
        locator=f"sheet:{k}:figure:{i}",
        text=alt,
        image=image,
        caption=alt or None,
        shape=f'Sheet "{title}": {name}',
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
