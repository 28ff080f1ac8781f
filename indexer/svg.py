"""SVG drawings (standalone files, inline in HTML, linked from documents) rendered to images with CairoSVG.

An SVG may name other resources: web URLs, local files, XML entities, stylesheets. None is read: entities are
refused by the XML parser, links other than to the drawing's own elements are removed, and what CairoSVG would
still fetch goes to a fetcher that serves only small raster images embedded as data: URIs. The drawing is bounded
before it is drawn: its size on the page (scaled to fit `long_side` and `max_pixels`), its nesting (`<use>`
chains included), the elements drawn once references are expanded, and patterns and masks, which CairoSVG draws
into images of their own size.
"""

from __future__ import annotations

import base64
import html.entities
import io
import math
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes
from xml.etree.ElementTree import Element, ParseError, tostring

from PIL import Image

from mmrag.core.errors import error_text
from mmrag.indexer.items import BadFileError, check_aspect

MAX_SVG_BYTES = 16 * 2**20
"""SVG files larger than this are refused (plots of many points reach a few MB)."""
MAX_WORDS = 1000
"""Characters of the drawing's own text (title, labels, legend) kept for search."""
_MIN_LONG_SIDE = 512
"""Small drawings (a 100x60 viewBox) are drawn at least this large: vectors scale without loss."""
_MAX_PATTERN_SIDE = 1024.0
_EMPTY = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'
_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_RASTER_FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP", "BMP"})
_SHAPES = frozenset({"path", "line", "polyline", "polygon", "rect", "circle", "ellipse", "text", "image", "use"})
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class SvgError(BadFileError):
    """The SVG cannot be drawn safely; the message says why, in one line."""


@dataclass(frozen=True)
class Drawing:
    """An SVG drawn as an image, with the words it shows."""

    image: Image.Image
    words: str
    """Its title and text elements (axis labels, legend, annotations), at most MAX_WORDS characters."""
    refused: tuple[str, ...]
    """External resources it names that were not read (web URLs, files, stylesheets)."""


def load_svg(
    path: Path,
    max_pixels: int,
    max_aspect_ratio: float | None = None,
    long_side: int | None = None,
    max_nesting: int = 64,
    max_elements: int = 20_000,
    max_bytes: int = MAX_SVG_BYTES,
) -> Drawing:
    """An SVG file drawn (see `render_svg`); larger than `max_bytes` is refused."""
    with path.open("rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SvgError(f"SVG larger than {max_bytes // 2**20} MB")
    return render_svg(data, max_pixels, max_aspect_ratio, long_side, max_nesting, max_elements)


def render_svg(
    data: bytes,
    max_pixels: int,
    max_aspect_ratio: float | None = None,
    long_side: int | None = None,
    max_nesting: int = 64,
    max_elements: int = 20_000,
) -> Drawing:
    """The drawing as an RGB image on white: at its own size, scaled down to `long_side` (up to 512 px when it is
    smaller) and to `max_pixels`; refused when more elongated than `max_aspect_ratio`, nested deeper than
    `max_nesting`, or drawing more than `max_elements` elements once `<use>` references and markers are expanded."""
    root = _parse(data)
    refused: list[str] = []
    _check_depth(root, max_nesting)
    _sanitize(root, max_pixels, refused)
    cost = _Cost(root, max_nesting, max_elements).total()
    if cost > max_elements:
        raise SvgError(f"SVG draws more than {max_elements} elements (MMRAG_MAX_PAGE_OBJECTS)")
    image = _draw(tostring(root), max_pixels, max_aspect_ratio, long_side, _fetcher(max_pixels, refused))
    return Drawing(image=image, words=_words(root), refused=tuple(dict.fromkeys(refused)))


def standalone(markup: str) -> bytes:
    """An `<svg>` element as written inside HTML, as an SVG document: HTML's named character references become
    numeric ones, and the SVG and XLink namespaces are declared when the page left them implicit."""
    xml_names = {"amp", "lt", "gt", "quot", "apos"}

    def numeric(match: re.Match[str]) -> str:
        name = match.group(1)
        code = html.entities.name2codepoint.get(name)
        return match.group(0) if name in xml_names or code is None else f"&#{code};"

    markup = re.sub(r"&([A-Za-z][A-Za-z0-9]*);", numeric, markup)
    head = re.match(r"\s*<svg\b[^>]*?(/?)>", markup, re.IGNORECASE)
    if head is not None:
        declare = "" if "xmlns=" in head.group(0) else f' xmlns="{_SVG_NS}"'
        if "xmlns:xlink" not in head.group(0) and "xlink:" in markup:
            declare += ' xmlns:xlink="http://www.w3.org/1999/xlink"'
        end = head.end() - len(head.group(1)) - 1
        markup = markup[:end] + declare + markup[end:]
    return markup.encode("utf-8")


def _parse(data: bytes) -> Element:
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    if data.startswith(b"\x1f\x8b"):
        raise SvgError("compressed SVG (.svgz) is not read")
    try:
        root = fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise SvgError(f"SVG declares XML entities or external references: refused ({type(e).__name__})") from e
    except ParseError as e:
        raise SvgError(f"not a well-formed SVG ({e})") from e
    if _local(root.tag) != "svg":
        raise SvgError(f"not an SVG drawing (its root element is <{_local(root.tag)[:40]}>)")
    return root


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _walk(root: Element) -> Iterator[tuple[Element, Element | None]]:
    """Every element with its parent, depth first, without recursion."""
    stack: list[tuple[Element, Element | None]] = [(root, None)]
    while stack:
        element, parent = stack.pop()
        yield element, parent
        stack.extend((child, element) for child in reversed(element))


def _check_depth(root: Element, max_nesting: int) -> None:
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > max_nesting:
            raise SvgError(f"SVG nested deeper than {max_nesting} elements (MMRAG_MAX_NESTING)")
        stack.extend((child, depth + 1) for child in element)


def _href(element: Element) -> str | None:
    return element.get(_XLINK_HREF, element.get("href"))


def _sanitize(root: Element, max_pixels: int, refused: list[str]) -> None:
    """Remove what would read outside the drawing or draw into an unbounded image: links other than to `#id` or
    to a small embedded raster image, stylesheet imports, masks, and patterns without a small size in user space."""
    removed: list[tuple[Element, Element]] = []
    for element, parent in _walk(root):
        tag = _local(element.tag)
        if parent is not None and (tag == "mask" or (tag == "pattern" and not _small_pattern(element))):
            removed.append((element, parent))
            continue
        if tag == "style" and element.text and "@import" in element.text:
            refused += re.findall(r"@import\s*([^;]{0,200})", element.text)
            element.text = re.sub(r"@import[^;]*;?", "", element.text)
        href = _href(element)
        if href is None or href.startswith("#") or (tag == "image" and _data_image(href, max_pixels) is not None):
            continue
        refused.append(href[:200])
        if tag in ("image", "use", "feImage") and parent is not None:
            removed.append((element, parent))  # it would draw nothing (and CairoSVG would fetch its own folder)
        for name in (_XLINK_HREF, "href"):
            element.attrib.pop(name, None)
    for element, parent in removed:
        parent.remove(element)


def _small_pattern(pattern: Element) -> bool:
    """CairoSVG draws a pattern's tile as an image of the tile's size: only small tiles in user space are kept."""
    if pattern.get("patternUnits") != "userSpaceOnUse" or _href(pattern) is not None:
        return False
    try:
        width, height = float(pattern.get("width", "0")), float(pattern.get("height", "0"))
    except ValueError:
        return False
    return 0 < width <= _MAX_PATTERN_SIDE and 0 < height <= _MAX_PATTERN_SIDE


class _Cost:
    """How many elements drawing the SVG draws: each `<use>` draws its target again, each marker once per vertex
    of every line (counted for all lines when the drawing has markers: CSS may attach them)."""

    def __init__(self, root: Element, max_nesting: int, limit: int) -> None:
        self.root, self.max_nesting, self.limit = root, max_nesting, limit
        self.by_id = {e.get("id"): e for e, _ in _walk(root) if e.get("id")}
        self.done: dict[int, tuple[int, int]] = {}
        """id(element) -> (cost, height) of its subtree."""
        self.open: set[int] = set()
        self.marker = 0

    def total(self) -> int:
        markers = [e for e, _ in _walk(self.root) if _local(e.tag) == "marker"]
        self.marker = max((self._visit(m, 1)[0] for m in markers), default=0)
        return self._visit(self.root, 1)[0]

    def _visit(self, element: Element, depth: int) -> tuple[int, int]:
        key = id(element)
        if key in self.open:
            raise SvgError("SVG element refers to itself (a <use> loop)")
        if key not in self.done:
            self.open.add(key)
            cost, height = self._own(element), 1
            for child in self._children(element):
                child_cost, child_height = self._visit(child, depth + 1)
                cost, height = min(cost + child_cost, self.limit + 1), max(height, child_height + 1)
            self.open.discard(key)
            self.done[key] = (cost, height)
        cost, height = self.done[key]
        if depth + height - 1 > self.max_nesting:
            raise SvgError(f"SVG nested deeper than {self.max_nesting} elements, <use> included (MMRAG_MAX_NESTING)")
        return cost, height

    def _children(self, element: Element) -> list[Element]:
        children = list(element)
        href = _href(element)
        if _local(element.tag) == "use" and href and href.startswith("#") and href[1:] in self.by_id:
            children.append(self.by_id[href[1:]])
        return children

    def _own(self, element: Element) -> int:
        tag = _local(element.tag)
        if tag not in _SHAPES:
            return 1
        vertices = len(_NUMBER.findall(element.get("d", "") + element.get("points", ""))) // 2 + 2
        cost = 1 + (self.marker * vertices if tag in ("path", "line", "polyline", "polygon") else 0)
        if tag == "image":  # decoded again each time it is drawn
            cost += _raster_pixels(_href(element) or "") // 4096
        return cost


def _data_image(url: str, max_pixels: int) -> bytes | None:
    """The bytes of a data: URI holding a raster image of at most `max_pixels` (None for anything else)."""
    if not url.startswith("data:") or "," not in url:
        return None
    header, payload = url[5:].split(",", 1)
    try:
        data = base64.b64decode(payload) if header.endswith(";base64") else unquote_to_bytes(payload)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in _RASTER_FORMATS or image.width * image.height > max_pixels:
                    return None
    except Exception:  # not base64, not an image, a bomb: not served
        return None
    return data


def _raster_pixels(url: str) -> int:
    data = _data_image(url, 2**62)
    if data is None:
        return 0
    with Image.open(io.BytesIO(data)) as image:
        return int(image.width * image.height)


def _fetcher(max_pixels: int, refused: list[str]) -> Callable[[str, str], bytes]:
    """CairoSVG's url_fetcher: small embedded raster images only; anything else (a stylesheet's @import, a web
    URL, a file) is recorded in `refused` and served as an empty drawing."""

    def fetch(url: str, resource_type: str) -> bytes:
        data = _data_image(url, max_pixels) if resource_type.startswith("image/") else None
        if data is None:
            refused.append(url[:200])
            return _EMPTY
        return data

    return fetch


class _SizeKnownError(Exception):
    def __init__(self, width: float, height: float) -> None:
        super().__init__()
        self.width, self.height = width, height


def _draw(
    data: bytes,
    max_pixels: int,
    max_aspect_ratio: float | None,
    long_side: int | None,
    fetch: Callable[[str, str], bytes],
) -> Image.Image:
    from cairosvg.parser import Tree
    from cairosvg.surface import PNGSurface

    class Probe(PNGSurface):
        """Stops before allocating anything: the drawing's own size, as CairoSVG computes it."""

        def _create_surface(self, width: float, height: float) -> Any:
            raise _SizeKnownError(width, height)

    try:
        tree = Tree(bytestring=data, url_fetcher=fetch, unsafe=False)
        try:
            Probe(tree, None, 96)
            raise SvgError("SVG without a size")
        except _SizeKnownError as size:
            width, height = _output_size(size.width, size.height, max_pixels, max_aspect_ratio, long_side)
        output = io.BytesIO()
        surface = PNGSurface(tree, output, 96, output_width=width, output_height=height)
        surface.finish()
    except (SvgError, RecursionError, MemoryError):
        raise
    except Exception as e:  # CairoSVG raises many types on drawings it cannot handle
        raise SvgError(f"cannot draw this SVG ({error_text(e)})") from e
    with Image.open(io.BytesIO(output.getvalue())) as image:
        rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _output_size(
    width: float, height: float, max_pixels: int, max_aspect_ratio: float | None, long_side: int | None
) -> tuple[int, int]:
    if not (math.isfinite(width) and math.isfinite(height)) or width <= 0 or height <= 0:
        raise SvgError(f"SVG without a usable size ({width:g}x{height:g})")
    check_aspect(max(round(width), 1), max(round(height), 1), max_aspect_ratio)
    scale = 1.0
    if long_side is not None:
        scale = min(long_side, max(_MIN_LONG_SIDE, max(width, height))) / max(width, height)
    scale = min(scale, math.sqrt(max_pixels / (width * height)))
    return max(round(width * scale), 1), max(round(height * scale), 1)


def _words(root: Element, limit: int = MAX_WORDS) -> str:
    """The drawing's title and text, in order, each distinct line once."""
    seen: dict[str, None] = {}
    used = 0
    for element, _ in _walk(root):
        if _local(element.tag) not in ("title", "text"):
            continue
        words = " ".join("".join(element.itertext()).split())
        if words and words not in seen:
            if used + len(words) > limit:
                break
            seen[words] = None
            used += len(words) + 1
    return " ".join(seen)
