"""Word, PowerPoint and Excel files (.docx, .pptx, .xlsx) -> items: text in reading order, tables, pictures and
native charts (their exact data as text, and a picture drawn from it), plus page images when LibreOffice is there.

Hostile files are refused before any parser sees them: a legacy or encrypted (OLE) file, a zip that inflates past
MMRAG_MAX_UNZIPPED_MB, XML with a DTD. Macros are never run: a file that carries them is indexed without them.

Locators: a document's 'chunk:i', 'table:i', 'figure:i', 'chart:i'; a presentation's 'slide:N:chunk:i',
'slide:N:table:i', 'slide:N:figure:i', 'slide:N:chart:i' (page=N); a workbook's 'sheet:K:table:i',
'sheet:K:figure:i', 'sheet:K:chart:i' (K counts the sheets from 1); page renders 'page:N'.
"""

from __future__ import annotations

from pathlib import Path

from mmrag.core.errors import error_text, one_line
from mmrag.indexer.items import BadFileError, Item
from mmrag.indexer.office_docx import docx_items
from mmrag.indexer.office_package import check_package
from mmrag.indexer.office_pptx import pptx_items
from mmrag.indexer.office_xlsx import xlsx_items
from mmrag.indexer.reading import Deadline, ExtractOptions

_NAMES = {".docx": "Word document", ".pptx": "PowerPoint presentation", ".xlsx": "Excel workbook"}
_MACRO_SUFFIXES = {".docx": ".docm", ".pptx": ".pptm", ".xlsx": ".xlsm"}


def office_items(
    path: Path, options: ExtractOptions, deadline: Deadline, warnings: list[str], notes: list[str]
) -> list[Item]:
    """The items of a .docx, .pptx or .xlsx; a file that cannot be read safely raises BadFileError (its reason)."""
    suffix = path.suffix.lower()
    check_package(path, options.max_unzipped_bytes, deadline, warnings)
    shown: list[int] = []  # a presentation's slides that LibreOffice prints (not hidden), by number
    try:
        if suffix == ".docx":
            items = docx_items(path, options, deadline, warnings)
        elif suffix == ".pptx":
            items = pptx_items(path, options, deadline, warnings, shown)
        else:
            items = xlsx_items(path, options, deadline, warnings)
    except BadFileError:
        raise
    except Exception as e:  # python-docx/pptx/openpyxl raise many types on a corrupt package
        raise BadFileError(_library_reason(e, suffix)) from e
    if options.office_pages:
        from mmrag.indexer.convert import office_pages

        pages = office_pages(path, options, deadline, warnings, notes)
        if suffix == ".pptx":
            _number_by_slide(pages, shown)
        link_pages(items, pages, by_slide=suffix == ".pptx")
        items += pages
    return items


def _library_reason(error: Exception, suffix: str) -> str:
    what = _NAMES[suffix]
    detail = one_line(str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error))
    if "macroEnabled" in str(error):  # after the file's path, which may push it past one_line's cut
        return f"macro-enabled {what} ({_MACRO_SUFFIXES[suffix]} content under a {suffix} name) is not read"
    if isinstance(error, KeyError):
        return f"corrupt {what}: missing part ({detail})"
    return f"corrupt {what}: {error_text(error)}"


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
