"""Markdown and HTML documents: their readable text and the local images they show, with captions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from bs4 import BeautifulSoup, Tag

_MARKDOWN_SUFFIXES = (".md", ".markdown")
_HTML_SUFFIXES = (".html", ".htm")


@dataclass(frozen=True)
class Figure:
    path: Path
    caption: str


@dataclass
class Document:
    text: str
    figures: list[Figure] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Links not followed, each with its reason (outside the allowed folders, file:// URLs)."""


class NestingError(ValueError):
    """The document nests elements deeper than allowed."""


def parse_document(path: Path, raw: str, roots: Sequence[Path] = (), max_nesting: int = 64) -> Document:
    """Plain text stays as it is; Markdown is rendered to HTML; HTML gives its text and its figures.

    Linked images count only inside `roots` (the indexed folders and any allowed extra ones); with no roots, only
    inside the document's own folder."""
    suffix = path.suffix.lower()
    allowed = tuple(roots) or (path.parent.resolve(),)
    if suffix in _MARKDOWN_SUFFIXES:
        from markdown_it import MarkdownIt

        # markdown-it caps block nesting itself (maxNesting); the HTML it renders is checked like any HTML
        return _from_html(path, MarkdownIt("commonmark").render(raw), allowed, max_nesting, fallback_text=raw)
    if suffix in _HTML_SUFFIXES:
        return _from_html(path, raw, allowed, max_nesting)
    return Document(text=raw)


def linked_images(path: Path, raw: str, roots: Sequence[Path] = (), max_nesting: int = 64) -> list[Path]:
    """The local image files a Markdown/HTML document shows (indexed with the document, not on their own)."""
    if path.suffix.lower() not in _MARKDOWN_SUFFIXES + _HTML_SUFFIXES:
        return []
    return [f.path for f in parse_document(path, raw, roots, max_nesting).figures]


def _from_html(
    path: Path, html: str, roots: Sequence[Path], max_nesting: int, fallback_text: str | None = None
) -> Document:
    _check_nesting(html, max_nesting)
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    document = Document(text="")
    seen = set()
    for img in soup.find_all("img"):
        src = str(img.get("src") or "")
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
        document.figures.append(Figure(path=target, caption=_caption(img)))
    text = soup.get_text("\n")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    cleaned = "\n".join(line for line in lines if line)
    document.text = cleaned if cleaned or fallback_text is None else fallback_text
    return document


class LinkRefusedError(ValueError):
    """A link that points where the indexer must not read."""


def _local_target(document: Path, src: str, roots: Sequence[Path]) -> Path | None:
    """The image file a local link points to (None for remote or missing images); refused outside `roots`."""
    from indexer.extract import IMAGE_SUFFIXES

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


def _caption(img: Tag) -> str:
    """figcaption of the enclosing figure, else alt/title text, else the paragraph around the image."""
    figure = img.find_parent("figure")
    if figure is not None and (caption := figure.find("figcaption")) is not None:
        return " ".join(caption.get_text(" ").split())
    own = " ".join(str(img.get(attr) or "") for attr in ("alt", "title")).strip()
    parent = img.find_parent(["p", "li", "td", "div"])
    around = " ".join(parent.get_text(" ").split()) if parent is not None else ""
    return " ".join(part for part in (own, around) if part)
