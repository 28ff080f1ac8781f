"""Markdown and HTML documents: their readable text and the local images they show, with captions."""

from __future__ import annotations

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


def parse_document(path: Path, raw: str) -> Document:
    """Plain text stays as it is; Markdown is rendered to HTML; HTML gives its text and its figures."""
    suffix = path.suffix.lower()
    if suffix in _MARKDOWN_SUFFIXES:
        from markdown_it import MarkdownIt

        return _from_html(path, MarkdownIt("commonmark").render(raw), fallback_text=raw)
    if suffix in _HTML_SUFFIXES:
        return _from_html(path, raw)
    return Document(text=raw)


def linked_images(path: Path, raw: str) -> list[Path]:
    """The local image files a Markdown/HTML document shows (indexed with the document, not on their own)."""
    if path.suffix.lower() not in _MARKDOWN_SUFFIXES + _HTML_SUFFIXES:
        return []
    return [f.path for f in parse_document(path, raw).figures]


def _from_html(path: Path, html: str, fallback_text: str | None = None) -> Document:
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    figures = []
    seen = set()
    for img in soup.find_all("img"):
        target = _local_target(path, str(img.get("src") or ""))
        if target is None or target in seen:
            continue
        seen.add(target)
        figures.append(Figure(path=target, caption=_caption(img)))
    text = soup.get_text("\n")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    cleaned = "\n".join(line for line in lines if line)
    return Document(text=cleaned if cleaned or fallback_text is None else fallback_text, figures=figures)


def _local_target(document: Path, src: str) -> Path | None:
    from indexer.extract import IMAGE_SUFFIXES

    url = urlparse(src)
    if not src or url.scheme not in ("", "file") or url.netloc:
        return None
    target = (document.parent / unquote(url.path)).resolve()
    return target if target.is_file() and target.suffix.lower() in IMAGE_SUFFIXES else None


def _caption(img: Tag) -> str:
    """figcaption of the enclosing figure, else alt/title text, else the paragraph around the image."""
    figure = img.find_parent("figure")
    if figure is not None and (caption := figure.find("figcaption")) is not None:
        return " ".join(caption.get_text(" ").split())
    own = " ".join(str(img.get(attr) or "") for attr in ("alt", "title")).strip()
    parent = img.find_parent(["p", "li", "td", "div"])
    around = " ".join(parent.get_text(" ").split()) if parent is not None else ""
    return " ".join(part for part in (own, around) if part)
