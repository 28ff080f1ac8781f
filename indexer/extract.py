"""Files -> items: decode images, render and read PDFs, chunk text, find figures and their captions.

Runs in worker processes, so it imports no model code. Each bad file becomes a FileResult with a one-line reason.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from mmrag.core.filetypes import (
    IMAGE_SUFFIXES,
    OFFICE_SUFFIXES,
    PDF_SUFFIXES,
    SIDECAR_SUFFIXES,
    SVG_SUFFIXES,
    TEXT_SUFFIXES,
)
from mmrag.indexer.items import BadFileError, FileResult, Item, display_path
from mmrag.indexer.reading import (
    PDFIUM_LOCK,
    Deadline,
    ExtractOptions,
    TimeLimitError,
    chunk_text,
    failure_reason,
    load_image,
    page_image,
    page_scale,
    page_text,
)

if TYPE_CHECKING:
    from mmrag.indexer.documents import Figure
    from mmrag.indexer.figures import PageFigures
    from mmrag.indexer.svg import Drawing

    Layout = PageFigures
    """What the table pass needs of a page: its figures, text lines and captions, and how it is displayed."""


def sidecars(image: Path) -> list[Path]:
    """Caption files of an image: chart.txt / chart.json or chart.png.txt / chart.png.json."""
    names = [image.with_suffix(s) for s in SIDECAR_SUFFIXES] + [
        image.with_name(image.name + s) for s in SIDECAR_SUFFIXES
    ]
    return [p for p in names if p.is_file()]


def file_digest(paths: Iterable[Path]) -> str:
    """sha256 over the bytes of a file and the files its objects depend on (sidecars, linked images)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def extract_file(
    path: Path, sha256: str, options: ExtractOptions, pages: tuple[int, int] | None = None, final: bool = True
) -> FileResult:
    """All items of one file (of pages [first, stop) of a long PDF); never raises for a bad file: every failure
    becomes the result's one-line error, and what is left out of a good file its warnings."""
    started = time.monotonic()
    result = FileResult(path=path, sha256=sha256, size=0, mtime=0.0, pages=pages, final=final)
    try:
        stat = path.stat()
        result.size, result.mtime = stat.st_size, stat.st_mtime
        result.items = _items(path, stat.st_size, options, pages, result.warnings, result.notes)
        if not result.items and pages is None:
            raise BadFileError("nothing to index (no text or images found)")
        for item in result.items:
            item.content_sha256 = _item_digest(item)
            if item.image is not None:
                item.size = item.image.size
                item.thumbnail = thumbnail_jpeg(item.image)
    except Exception as e:  # one bad file must never stop the run: whatever it raises is its reason
        result.items = []
        result.error = failure_reason(e)
    result.seconds = time.monotonic() - started
    return result


def _items(
    path: Path,
    size: int,
    options: ExtractOptions,
    pages: tuple[int, int] | None,
    warnings: list[str],
    notes: list[str],
) -> list[Item]:
    if size == 0:
        raise BadFileError("empty file")
    if not path.is_file():
        raise BadFileError("not a regular file")
    deadline = Deadline(options.timeout_s)
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return _image_items(path, options, deadline, warnings, notes)
    if suffix in PDF_SUFFIXES:
        with PDFIUM_LOCK:
            return _pdf_items(path, options, pages, deadline, warnings, notes)
    if suffix in TEXT_SUFFIXES:
        return _text_items(path, options, deadline, warnings)
    if suffix in OFFICE_SUFFIXES:
        from mmrag.indexer.office import office_items

        return office_items(path, options, deadline, warnings, notes)
    raise BadFileError(f"unsupported file type {suffix or '(no extension)'}")


def thumbnail_jpeg(image: Image.Image, size: int = 320) -> str:
    """The image at most `size` pixels on its long side, as base64 JPEG (what the collection stores)."""
    thumb = image.copy()
    thumb.thumbnail((size, size), reducing_gap=2.0)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _image_items(
    path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str], notes: list[str]
) -> list[Item]:
    """The image with its sidecar caption; with options.ocr_images, the words Tesseract reads in it too: text
    items (origin 'ocr', locator 'ocr:chunk:i') and the first 1000 characters after the caption."""
    caption = " ".join(_sidecar_text(p, options) for p in sidecars(path)).strip()
    if path.suffix.lower() in SVG_SUFFIXES:
        drawing = _load_svg(path, options, warnings)
        text = " ".join(part for part in (caption, drawing.words) if part)
        return [Item(kind="image", locator="image", text=text, image=drawing.image, image_path=display_path(path))]
    image = load_image(path, options.max_pixels, options.max_aspect_ratio, options.keep_long_side)
    item = Item(kind="image", locator="image", text=caption, image=image, image_path=display_path(path))
    if not options.ocr_images:
        return [item]
    from mmrag.indexer.ocr import OcrError, ocr_image, prepare, tesseract_ready

    if not tesseract_ready(options.tesseract):
        notes.append("image not OCRed (install Tesseract to OCR images: see README)")
        return [item]
    deadline.check()
    full = load_image(path, options.max_pixels, options.max_aspect_ratio)  # OCR reads the full resolution
    try:
        text = ocr_image(prepare(full), options.tesseract, options.ocr_language, deadline.left())
    except OcrError as e:
        deadline.check()
        warnings.append(f"not OCRed: {e}")
        return [item]
    item.text = "\n".join(part for part in (caption, text[:1000]) if part)
    chunks = [
        Item(kind="text", locator=f"ocr:chunk:{i}", text=chunk, chunk=i, origin="ocr")
        for i, chunk in enumerate(chunk_text(text, options))
    ]
    return [item, *chunks]


def _load_svg(path: Path, options: ExtractOptions, warnings: list[str], markup: str | None = None) -> Drawing:
    """An SVG file (or the inline `markup` of a document) drawn within the options' bounds; what it links to is
    not read, and said in `warnings`."""
    from mmrag.indexer.svg import load_svg, render_svg, standalone

    bounds = (options.max_pixels, options.max_aspect_ratio, options.keep_long_side, options.max_nesting)
    if markup is None:
        drawing = load_svg(path, *bounds, max_elements=options.max_page_objects)
    else:
        drawing = render_svg(standalone(markup), *bounds, max_elements=options.max_page_objects)
    if drawing.refused:
        shown = ", ".join(repr(url[:80]) for url in drawing.refused[:3])
        more = f" and {len(drawing.refused) - 3} more" if len(drawing.refused) > 3 else ""
        where = "" if markup is None else "inline "
        warnings.append(f"{where}SVG {display_path(path.name)}: links not followed: {shown}{more}")
    return drawing


def _sidecar_text(path: Path, options: ExtractOptions) -> str:
    text = read_text(path, options.max_text_bytes)
    if path.suffix != ".json":
        return text.strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadFileError(f"sidecar {path.name} is not valid JSON: {e.msg}") from e
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        raise BadFileError(f"sidecar {path.name} is not usable JSON: {str(e).split(';')[0]}") from e
    except RecursionError as e:
        raise BadFileError(f"sidecar {path.name} is nested too deeply") from e
    if _json_depth(data) > options.max_nesting:
        raise BadFileError(f"sidecar {path.name} is nested deeper than {options.max_nesting} (MMRAG_MAX_NESTING)")
    if isinstance(data, dict):
        parts = [str(data[k]) for k in ("title", "caption", "description") if data.get(k)]
        rest = {k: v for k, v in data.items() if k not in ("title", "caption", "description")}
        if rest:
            parts.append(_flatten(rest))
        return ". ".join(parts)
    return _flatten(data)


def _flatten(value: object) -> str:
    """JSON as words (`Engineering 42, Sales 17`): what BM25 and the text embedder read best."""
    if isinstance(value, dict):
        pairs = [_flatten(v) if k in ("data", "values", "table") else f"{k} {_flatten(v)}" for k, v in value.items()]
        return ", ".join(pairs)
    if isinstance(value, list):
        return ", ".join(_flatten(v) for v in value)
    return str(value)


def _size(n: int) -> str:
    return f"{n / 2**20:.3g} MB" if n >= 2**20 else f"{n / 2**10:.3g} KB"


def _json_depth(value: object) -> int:
    """How deep lists and objects nest in parsed JSON (iterative: no recursion limit to hit)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def read_text(path: Path, max_bytes: int, warnings: list[str] | None = None) -> str:
    """The file as UTF-8 text, at most `max_bytes` of it (what is cut is said in `warnings`)."""
    with path.open("rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        data = data[:max_bytes]
        while data and (data[-1] & 0xC0) == 0x80:  # do not cut a character in two
            data = data[:-1]
        data = data[:-1] if data and data[-1] >= 0xC0 else data
        if warnings is not None:
            warnings.append(f"text after the first {_size(max_bytes)} not indexed (MMRAG_MAX_TEXT_MB)")
    encoding = _bom_encoding(data)
    if encoding is None and data.count(b"\0") > len(data) // 10:
        raise BadFileError("binary data, not text")
    try:
        return data.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError as e:
        if encoding is not None and e.start >= len(data) - 3:  # the cut fell inside a UTF-16/32 character
            return data[: e.start].decode(encoding)
        raise BadFileError(f"not {encoding or 'UTF-8'} text (invalid byte at offset {e.start})") from e


def _bom_encoding(data: bytes) -> str | None:
    """UTF-16/32 announced by a byte-order mark (UTF-8's own BOM is handled by utf-8-sig)."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    return None


def _text_items(path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str]) -> list[Item]:
    from mmrag.indexer.documents import parse_document

    raw = read_text(path, options.max_text_bytes, warnings)
    document = parse_document(path, raw, options.roots or (path.parent.resolve(),), options.max_nesting)
    warnings += document.refused
    deadline.check()
    items = [
        Item(kind="text", locator=f"chunk:{i}", text=chunk, chunk=i)
        for i, chunk in enumerate(chunk_text(document.text, options))
    ]
    for i, figure in enumerate(document.figures):
        deadline.check()
        if (item := _figure_item(path, i, figure, options, warnings)) is not None:
            items.append(item)
    for i, table in enumerate(document.tables):
        text = f"{table.caption}\n{table.markdown}".strip()
        items.append(Item(kind="table", locator=f"table:{i}", text=text, label=table.label, caption=table.caption))
    deadline.check()
    _add_references(items, document.text)
    return items


def _figure_item(path: Path, i: int, figure: Figure, options: ExtractOptions, warnings: list[str]) -> Item | None:
    """A document's figure as an image item: its caption, alt text and (for an SVG) the words it shows; None
    when the image cannot be read (said in `warnings`: it costs the figure, not the document)."""
    source = figure.path or path
    words = ""
    try:
        if figure.svg is not None or source.suffix.lower() in SVG_SUFFIXES:
            drawing = _load_svg(source, options, warnings, figure.svg)
            image, words = drawing.image, drawing.words
        else:
            image = load_image(source, options.max_pixels, options.max_aspect_ratio, options.keep_long_side)
    except (BadFileError, OSError, RecursionError, MemoryError) as e:
        what = f"inline SVG {i}" if figure.svg is not None else f"image {display_path(source)}"
        warnings.append(f"{what} left out: {failure_reason(e)}")
        return None
    alt = "" if figure.alt in figure.caption or figure.alt in words else figure.alt
    return Item(
        kind="image",
        locator=f"figure:{i}",
        text=" ".join(part for part in (figure.caption, alt, words) if part),
        image=image,
        image_path=None if figure.path is None else display_path(figure.path),
        label=figure.label,
        caption=figure.caption or None,
    )


def pdf_page_count(path: Path) -> int | None:
    """Pages of a PDF (None when it cannot be opened: extraction then says why)."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(path)
        except (pdfium.PdfiumError, OSError):
            return None
        try:
            return len(pdf)
        finally:
            pdf.close()


def _pdf_items(
    path: Path,
    options: ExtractOptions,
    pages: tuple[int, int] | None,
    deadline: Deadline,
    warnings: list[str],
    notes: list[str],
) -> list[Item]:
    """The pages' items; pages with no text layer are OCRed when Tesseract is there, else listed in one note.
    The caller holds the PDFium lock."""
    import pypdfium2 as pdfium

    from mmrag.indexer.ocr import OcrLanguageError, unread_note

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as e:
        # PDFium's last-error code can be stale (left by an earlier file), so "password" is believed only when
        # the file has an encryption dictionary
        if "password" in str(e).lower() and _has_encrypt_dict(path):
            raise BadFileError("encrypted PDF (password required)") from e
        detail = str(e).split(" (PDFium:")[0].rstrip(".")  # its error code may belong to another file
        raise BadFileError(f"corrupt or unreadable PDF: {detail}") from e
    try:
        total = len(pdf)
        first, stop = pages or (1, total + 1)
        stop = min(stop, total + 1, options.max_pdf_pages + 1)
        if total > options.max_pdf_pages and stop == options.max_pdf_pages + 1 and first <= stop:
            warnings.append(
                f"pages {options.max_pdf_pages + 1}-{total} not indexed (MMRAG_MAX_PDF_PAGES={options.max_pdf_pages})"
            )
        items: list[Item] = []
        body: list[str] = []
        layouts: dict[int, Layout] = {}
        unread: list[int] = []
        failed = 0
        for number in range(first, stop):
            deadline.check()
            try:
                items += _page_items(pdf, number, options, deadline, warnings, body, layouts, unread)
            except (TimeLimitError, OcrLanguageError):
                raise
            except (BadFileError, pdfium.PdfiumError, ValueError, OSError, MemoryError, RecursionError) as e:
                failed += 1
                warnings.append(f"page {number} left out: {failure_reason(e)}")
        if failed and failed == stop - first:
            raise BadFileError(f"no page could be read ({warnings[-1]})")
        if unread:
            notes.append(unread_note(unread, options.ocr))
        if layouts:
            items = _add_tables(path, items, layouts, options, deadline, warnings)
        _add_references(items, "\n".join(body))
        return items
    finally:
        pdf.close()


def _add_tables(
    path: Path,
    items: list[Item],
    layouts: dict[int, Layout],
    options: ExtractOptions,
    deadline: Deadline,
    warnings: list[str],
) -> list[Item]:
    """Ruled tables (pdfplumber) on the pages that may hold one, as table items with their caption; a figure
    that is one of them (a table with shaded rows looks like a drawing) gives way to it."""
    from mmrag.indexer.captions import table_captions
    from mmrag.indexer.geometry import covers
    from mmrag.indexer.tables import find_pdf_tables

    found = find_pdf_tables(
        path, sorted(layouts), max_objects=options.max_page_objects, check=deadline.check, warnings=warnings
    )
    dropped: set[str] = set()
    tables: list[Item] = []
    for number, regions in sorted(found.items()):
        layout = layouts[number]
        rects = [layout.view.of_display(region.bbox) for region in regions]
        for i, (region, caption) in enumerate(zip(regions, table_captions(rects, layout.captions), strict=True)):
            text = caption.text if caption else ""
            tables.append(
                Item(
                    kind="table",
                    locator=f"page:{number}:table:{i}",
                    text=f"{text}\n{region.markdown}".strip()[: options.chunk_size * 8],
                    page=number,
                    label=caption.label.text if caption and caption.label else None,
                    caption=text or None,
                    bbox=region.bbox,
                )
            )
        for item in items:
            if item.page != number or item.kind != "image" or item.bbox is None:
                continue
            if any(covers(region.bbox, item.bbox) or covers(item.bbox, region.bbox, 0.9) for region in regions):
                dropped.add(item.locator)
    kept = [item for item in items if item.locator not in dropped]
    return kept + tables


def _add_references(items: list[Item], body: str) -> None:
    """Append to each labelled figure and table the body sentences that refer to it ("as shown in Figure 3")."""
    from mmrag.indexer.captions import References, caption_label

    labelled = [item for item in items if item.label and item.caption and item.kind in ("image", "table")]
    if not labelled:
        return
    index = References(body)
    for item in labelled:
        label = caption_label(item.caption or "")
        found = index.about(label, exclude=item.caption or "") if label else ""
        if found:
            item.text = f"{item.text}\n{found}"


def _has_encrypt_dict(path: Path, span: int = 1 << 20) -> bool:
    """Whether the first or last MB of a PDF names an /Encrypt dictionary (where trailers and xref streams are)."""
    with path.open("rb") as f:
        head = f.read(span)
        f.seek(max(f.seek(0, io.SEEK_END) - span, 0))
        return b"/Encrypt" in head or b"/Encrypt" in f.read(span)


def _page_items(
    pdf: Any,
    number: int,
    options: ExtractOptions,
    deadline: Deadline,
    warnings: list[str],
    body: list[str],
    layouts: dict[int, Layout],
    unread: list[int],
) -> list[Item]:
    """The page image, its text chunks, and its figures and tables; its body text (no caption, no figure's
    labels) goes to `body`, where references to figures are looked for. A page with no text layer (a scan) is
    OCRed when Tesseract is there (its text items origin 'ocr'), else its number goes to `unread`; a blank one
    is neither."""
    from mmrag.indexer.ocr import is_blank, no_text_layer

    page = pdf[number - 1]
    textpage = page.get_textpage()
    text = page_text(textpage)
    if len(text) > options.max_text_bytes:
        text = text[: options.max_text_bytes]
        warnings.append(f"page {number}: text after {options.max_text_bytes} characters not indexed")
    scale = page_scale(page, options.page_long_side)
    rendered = None
    try:
        rendered = page_image(page, options)
    except BadFileError as e:
        warnings.append(f"page {number}: page image left out: {e}")
    deadline.check()
    origin = None
    if no_text_layer(text) and not (rendered is not None and is_blank(rendered)):
        ocred = _ocr_page(page, number, options, deadline, warnings, unread)
        if ocred is not None:
            text, origin = ocred, "ocr"
            body.append(text)
    items = []
    if rendered is not None:
        items.append(
            Item(kind="page", locator=f"page:{number}", text=text[:1000], image=rendered, page=number, origin=origin)
        )
    for i, chunk in enumerate(chunk_text(text, options)):
        items.append(
            Item(kind="text", locator=f"page:{number}:chunk:{i}", text=chunk, page=number, chunk=i, origin=origin)
        )
    if options.figures:
        try:
            items += _pdf_figures(page, textpage, number, scale, options, deadline, warnings, body, layouts)
        except TimeLimitError:
            raise
        except Exception as e:  # the page's figures are lost, not its text and image
            warnings.append(f"page {number}: figures not read: {failure_reason(e)}")
    return items


def _ocr_page(
    page: Any, number: int, options: ExtractOptions, deadline: Deadline, warnings: list[str], unread: list[int]
) -> str | None:
    """The text Tesseract reads on a page with no text layer; None when it is not read: OCR off or Tesseract not
    there (the page's number goes to `unread`), or Tesseract failed (a warning)."""
    from mmrag.indexer.ocr import OcrError, ocr_page, tesseract_ready

    if not (options.ocr and tesseract_ready(options.tesseract)):
        unread.append(number)
        return None
    try:
        return ocr_page(page, options.max_pixels, options.tesseract, options.ocr_language, deadline.left())
    except OcrError as e:
        deadline.check()
        warnings.append(f"page {number}: not OCRed: {e}")
        return None


def _pdf_figures(
    page: Any,
    textpage: Any,
    number: int,
    page_scale: float,
    options: ExtractOptions,
    deadline: Deadline,
    warnings: list[str],
    body: list[str],
    layouts: dict[int, Layout],
) -> list[Item]:
    """The figures of one page, each rendered from the page at (at least) twice the page image's scale. A page
    that may hold a table (ruled lines, a table's caption) keeps its layout in `layouts` for the table pass."""
    from mmrag.indexer.captions import match_captions, nearby_text
    from mmrag.indexer.figures import find_figures

    found = find_figures(page, textpage, options.max_page_objects)
    if not found.scanned_all:
        warnings.append(
            f"page {number}: more than {options.max_page_objects} objects; the rest not scanned for figures "
            "(MMRAG_MAX_PAGE_OBJECTS)"
        )
    deadline.check()
    for f, matched in match_captions([figure.rect for figure in found.figures], found.captions).items():
        found.figures[f].caption = matched
    taken = {i for c in found.captions for i in c.lines} | {i for f in found.figures for i in f.inside}
    free = [line for i, line in enumerate(found.lines) if i not in taken]
    body += [line.text for line in sorted(free, key=lambda line: line.order)]
    if found.grids or any(c.label is not None and c.label.table for c in found.captions):
        layouts[number] = found
    width, height = page.get_size()
    items: list[Item] = []
    for figure in sorted(found.figures, key=lambda f: (-f.rect[3], f.rect[0])):
        deadline.check()
        box = found.view.display(figure.rect)
        long_side = max(box[2] - box[0], box[3] - box[1], 1.0)
        scale = min(2 * page_scale, options.figure_long_side / long_side)
        try:
            pad = 3.0  # the crop keeps a little white around the figure's outermost marks
            crop = (
                max(box[0] - pad, 0),
                max(height - box[3] - pad, 0),
                max(width - box[2] - pad, 0),
                max(box[1] - pad, 0),
            )
            image = page.render(scale=scale, crop=crop).to_pil().convert("RGB")
        except Exception as e:  # a figure that cannot be drawn costs that figure
            warnings.append(f"page {number}: a figure left out: {failure_reason(e)}")
            continue
        caption = figure.caption.text if figure.caption else nearby_text(figure.rect, found.lines, taken)
        label = figure.caption.label.text if figure.caption and figure.caption.label else None
        words = figure.words(found.lines)
        items.append(
            Item(
                kind="image",
                locator=f"page:{number}:figure:{len(items)}",
                text="\n".join(part for part in (caption, words) if part),
                image=image,
                page=number,
                label=label,
                caption=caption or None,
                bbox=box,
            )
        )
    return items


def _item_digest(item: Item) -> str:
    digest = hashlib.sha256(item.kind.encode() + item.locator.encode() + item.text.encode("utf-8", "replace"))
    if item.image is not None:
        digest.update(item.image.tobytes())
    return digest.hexdigest()
