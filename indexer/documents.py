"""Markdown and HTML documents: their readable text, the figures they show (linked images, inline SVG charts)
with captions, and their tables."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from bs4 import BeautifulSoup, NavigableString, Tag

from mmrag.core.filetypes import HTML_SUFFIXES, IMAGE_SUFFIXES, MARKDOWN_SUFFIXES
from mmrag.indexer.captions import caption_label, caption_of
from mmrag.indexer.tables import is_table, markdown_table

MAX_TABLE_CHARS = 8000
"""A table's Markdown past this is cut (at a row): its text is one search item."""
_MAX_AROUND = 500
"""Characters of the text around an uncaptioned figure used as its caption."""
_MAX_CAPTION = 1000
"""Characters of a caption kept (a figcaption may hold a whole section)."""
_MAX_COLSPAN = 50
MAX_FIGURES = 500
"""Figures read per document (each is an image to decode or draw)."""


@dataclass(frozen=True)
class Figure:
    """An image a document shows: a linked image file or an inline `<svg>` drawing."""

    caption: str
    """Its `<figcaption>`, or the paragraph beside it that starts with a figure label ("Figure 3: ..."); without
    either, its alt text and the text around it."""
    label: str | None = None
    """'Figure 3' as printed in the caption (None: unlabelled)."""
    alt: str = ""
    """Its alt and title text (an SVG's `<title>`)."""
    path: Path | None = None
    """The linked image file (None for an inline SVG)."""
    svg: str | None = None
    """The inline `<svg>` element as written (None for a linked file)."""


@dataclass(frozen=True)
class Table:
    """A `<table>` (or a Markdown table) with at least two rows and columns."""

    markdown: str
    caption: str = ""
    """Its `<caption>`, or the paragraph before (or after) it that starts with a table label ("Table 2: ...")."""
    label: str | None = None


@dataclass
class Document:
    text: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Links not followed and figures left out, each with its reason (outside the allowed folders, file:// URLs)."""


class NestingError(ValueError):
    """The document nests elements deeper than allowed."""


def parse_document(path: Path, raw: str, roots: Sequence[Path] = (), max_nesting: int = 64) -> Document:
    """Plain text stays as it is; Markdown is rendered to HTML (GitHub tables included); HTML gives its text, its
    figures and its tables.

    Linked images count only inside `roots` (the indexed folders and any allowed extra ones); with no roots, only
    inside the document's own folder."""
    suffix = path.suffix.lower()
    allowed = tuple(roots) or (path.parent.resolve(),)
    if suffix in MARKDOWN_SUFFIXES:
        from markdown_it import MarkdownIt

        # markdown-it caps block nesting itself (maxNesting); the HTML it renders is checked like any HTML
        markdown = MarkdownIt("commonmark").enable("table")
        return _from_html(path, markdown.render(raw), allowed, max_nesting, fallback_text=raw)
    if suffix in HTML_SUFFIXES:
        return _from_html(path, raw, allowed, max_nesting)
    return Document(text=raw)


def linked_images(path: Path, raw: str, roots: Sequence[Path] = (), max_nesting: int = 64) -> list[Path]:
    """The local image files a Markdown/HTML document shows (indexed with the document, not on their own)."""
    if path.suffix.lower() not in MARKDOWN_SUFFIXES | HTML_SUFFIXES:
        return []
    return [f.path for f in parse_document(path, raw, roots, max_nesting).figures if f.path is not None]


def _from_html(
    path: Path, html: str, roots: Sequence[Path], max_nesting: int, fallback_text: str | None = None
) -> Document:
    _check_nesting(html, max_nesting)
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    document = Document(text="")
    _find_figures(soup, html, path, roots, document)
    document.tables = [table for tag in soup.find_all("table") if (table := _table(tag)) is not None]
    for svg in soup.find_all("svg"):  # its words (tick labels, legend) belong to the figure, not the prose
        svg.decompose()
    text = soup.get_text("\n")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    cleaned = "\n".join(line for line in lines if line)
    document.text = cleaned if cleaned or fallback_text is None else fallback_text
    return document


def _find_figures(soup: BeautifulSoup, html: str, path: Path, roots: Sequence[Path], document: Document) -> None:
    """Linked images and inline SVG drawings, in document order, with their captions."""
    seen: set[Path] = set()
    claimed: set[int] = set()
    """Caption paragraphs already given to a figure."""
    line_starts = [0] + [match.end() for match in re.finditer("\n", html)]
    for element in soup.find_all(["img", "svg"]):
        if element.find_parent("svg") is not None:
            continue  # part of a drawing
        if len(document.figures) == MAX_FIGURES:
            document.refused.append(f"figures after the first {MAX_FIGURES} not indexed")
            return
        if element.name == "svg":
            markup = _source(html, line_starts, element)
            if markup is None:
                document.refused.append("an inline SVG left out: its end tag is missing")
                continue
            document.figures.append(_figure(element, claimed, svg=markup))
            continue
        src = str(element.get("src") or "")
        try:
            target = _local_target(path, src, roots)
        except LinkRefusedError as e:
            message = f"image link {src[:200]!r} not followed: {e}"
            if message not in document.refused:
                document.refused.append(message)
            continue
        if target is None or target in seen:
            continue
        seen.add(target)
        document.figures.append(_figure(element, claimed, path=target))


def _source(html: str, line_starts: list[int], element: Tag) -> str | None:
    """An `<svg>` element as written in `html` (the parser lower-cases SVG's names: viewBox, linearGradient)."""
    if element.sourceline is None or element.sourcepos is None:
        return None
    start = line_starts[element.sourceline - 1] + element.sourcepos
    depth = 0
    for match in re.compile(r"<(/?)svg(?=[\s/>])[^>]*?(/?)>", re.IGNORECASE).finditer(html, start):
        if match.group(1):
            depth -= 1
        elif not match.group(2):
            depth += 1
        if depth <= 0:
            return html[start : match.end()]
    return None


class LinkRefusedError(ValueError):
    """A link that points where the indexer must not read."""


def _local_target(document: Path, src: str, roots: Sequence[Path]) -> Path | None:
    """The image file a local link points to (None for remote or missing images); refused outside `roots`."""

    url = urlparse(src)
    if not src or url.scheme not in ("", "file") or url.netloc:
        return None
    try:
        target = (document.parent / unquote(url.path)).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # symlink loops, NUL bytes
        raise LinkRefusedError(f"unresolvable ({e})") from e
    if not inside(target, roots):
        raise LinkRefusedError("it points outside the indexed folders (MMRAG_EXTRA_ROOTS allows more)")
    return target if target.suffix.lower() in IMAGE_SUFFIXES and target.is_file() else None


def inside(path: Path, roots: Sequence[Path]) -> bool:
    """Whether the resolved `path` lies in one of the (resolved) `roots`."""
    return any(path == root or path.is_relative_to(root) for root in roots)


_VOID = frozenset(
    {
        *("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track"),
        "wbr",
        # elements whose end tag may be left out: they do not deepen sloppy HTML
        *("p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead", "tbody", "tfoot", "colgroup"),
        *("caption", "rb", "rt", "rp", "html", "head", "body"),
    }
)


def _check_nesting(html: str, max_nesting: int) -> None:
    """Refuse HTML whose elements nest deeper than `max_nesting` (a cheap scan before parsing)."""
    from html.parser import HTMLParser

    class Depth(HTMLParser):
        depth = 0

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag not in _VOID:
                self.depth += 1
                if self.depth > max_nesting:
                    raise NestingError(f"HTML nested deeper than {max_nesting} elements (MMRAG_MAX_NESTING)")

        def handle_endtag(self, tag: str) -> None:
            if tag not in _VOID:
                self.depth = max(self.depth - 1, 0)

        def handle_startendtag(self, tag: str, attrs: object) -> None:
            pass

    parser = Depth(convert_charrefs=False)
    parser.feed(html)
    parser.close()


_INLINE = frozenset({"a", "span", "em", "strong", "b", "i", "u", "small", "picture", "sup", "sub", "mark", "center"})
_PARAGRAPHS = frozenset({"p", "li", "td", "th", "dd", "dt", "figure"})


def _figure(element: Tag, claimed: set[int], path: Path | None = None, svg: str | None = None) -> Figure:
    """A figure with its caption: its figcaption; else a label paragraph ("Figure 3: ...") in, after or before
    its block; else its alt text and the text around it."""
    alt = _alt(element)
    figure = element.find_parent("figure")
    if figure is not None and (figcaption := figure.find("figcaption")) is not None:
        caption = _words(figcaption)[:_MAX_CAPTION]
        label = caption_label(caption)
        return Figure(caption, label.text if label else None, alt, path, svg)
    paragraph = _label_paragraph(element, claimed)
    if paragraph is not None:
        caption = _words(paragraph)[:_MAX_CAPTION]
        label = caption_label(caption)
        return Figure(caption, label.text if label else None, alt, path, svg)
    parent = element.find_parent(["p", "li", "td", "div"])
    around = _words(parent)[:_MAX_AROUND] if parent is not None else ""
    caption = " ".join(part for part in (alt, around) if part)
    label = caption_label(alt)
    return Figure(caption, label.text if label and label.strong and not label.table else None, alt, path, svg)


def _alt(element: Tag) -> str:
    if element.name == "svg":
        title = element.find("title")
        return _words(title) if title is not None else str(element.get("aria-label") or "")
    return " ".join(" ".join(str(element.get(attr) or "").split()) for attr in ("alt", "title")).strip()


def _words(element: Tag) -> str:
    return " ".join(element.get_text(" ").split())


def _label_paragraph(element: Tag, claimed: set[int]) -> Tag | None:
    """The paragraph that captions `element` by the label convention: its own paragraph when its text starts with
    a figure label, else the next one, else the previous one (the next one is left to the image after it when
    the previous one is a free caption: captions above their figures)."""
    block = element
    while isinstance(block.parent, Tag) and block.parent.name in _INLINE:
        block = block.parent
    if isinstance(block.parent, Tag) and block.parent.name in _PARAGRAPHS:
        block = block.parent
    if _is_caption(block, claimed, table=False):
        claimed.add(id(block))
        return block
    after, before = _sibling(block, after=True), _sibling(block, after=False)
    if after is not None and _is_caption(after, claimed, table=False):
        following = _sibling(after, after=True)
        shows_next = following is not None and bool(following.name in ("img", "svg") or following.find(["img", "svg"]))
        if not (shows_next and before is not None and _is_caption(before, claimed, table=False)):
            claimed.add(id(after))
            return after
    if before is not None and _is_caption(before, claimed, table=False):
        claimed.add(id(before))
        return before
    return None


def _sibling(element: Tag, after: bool) -> Tag | None:
    """The element next to `element` (whitespace between them skipped; text between them means none)."""
    sibling = element.next_sibling if after else element.previous_sibling
    while isinstance(sibling, NavigableString) and not sibling.strip():
        sibling = sibling.next_sibling if after else sibling.previous_sibling
    return sibling if isinstance(sibling, Tag) else None


def _is_caption(element: Tag, claimed: set[int], table: bool) -> bool:
    if id(element) in claimed or element.name in ("table", "figure"):
        return False
    return caption_of(_words(element)[:200], table) is not None


def _table(element: Tag) -> Table | None:
    """A data table: its rows as Markdown, with its caption; None for a layout table (one holding a table, one
    row or one column, mostly empty cells)."""
    if element.find_parent("table") is not None or element.find("table") is not None:
        return None
    rows = [_cells(tr) for tr in element.find_all("tr") if tr.find_parent("table") is element]
    rows = [row for row in rows if row]
    if not rows or not is_table(rows):
        return None
    caption_tag = element.find("caption")
    caption = _words(caption_tag)[:_MAX_CAPTION] if caption_tag is not None else ""
    if not caption:
        for side in (_sibling(element, after=False), _sibling(element, after=True)):
            if side is not None and _is_caption(side, set(), table=True):
                caption = _words(side)[:_MAX_CAPTION]
                break
    label = caption_label(caption)
    return Table(markdown_table(rows, MAX_TABLE_CHARS), caption, label.text if label else None)


def _cells(row: Tag) -> list[str]:
    cells: list[str] = []
    for cell in row.find_all(["td", "th"], recursive=False):
        cells.append(_words(cell))
        try:
            span = int(str(cell.get("colspan") or 1))
        except ValueError:
            span = 1
        cells += [""] * (min(max(span, 1), _MAX_COLSPAN) - 1)
    return cells
