"""Figures on a PDF page, vector or raster, found from the page's drawing operations; and their captions.

No model weights: pypdfium2 gives every page object with its bounds. Drawing objects (paths, images, shadings,
form XObjects) that touch or nearly touch are painted into a coarse occupancy grid, whose connected components are
candidate regions. Page furniture is left out before (page-wide backgrounds, glyph-sized specks) or after
(components made only of thin rules: header/footer lines, underlines, table grids; components too small, or of one
plain box). The text lines near a region that are not a caption (tick labels, axis titles, legends, the chart's title)
join it, so the crop holds the whole chart. A caption is the paragraph that starts with a figure label just below or
above the region; only when there is none does the nearest text stand in for it.

Geometry is in view space: points on the page as displayed (its /Rotate applied, so a turned page reads like any
other), y pointing up as in PDF. `View.display` turns a rect into what items carry: (x0, top, x1, bottom) from the
displayed page's top-left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmrag.indexer.captions import Caption, TextLine, find_captions, text_lines
from mmrag.indexer.geometry import Rect, View, box_gap, box_height, box_width, covers, overlaps_x, union

MERGE_GAP = 10.0
"""Drawing objects closer than this (points) belong to the same figure."""

TEXT_MARGIN = 16.0
"""Text lines this close to a figure (and not a caption) are its labels: ticks, axis titles, legends, its title."""

MIN_FIGURE_SIDE = 36.0
"""A figure is at least this big (points) both ways: half an inch."""

THIN = 2.0
"""Objects thinner than this are lines: a figure is not only lines."""
_FORM, _IMAGE, _TEXT = 5, 3, 1  # PDFium's page object types


@dataclass
class Figure:
    rect: Rect
    """The drawing plus the text inside and around it (labels, legends, title), caption excluded."""
    graphics: Rect
    """The drawing alone."""
    objects: int
    images: int
    inside: list[int] = field(default_factory=list)
    """Indices of the text lines that belong to it."""
    caption: Caption | None = None

    def words(self, lines: Sequence[TextLine]) -> str:
        """The words inside the figure (title, axis labels, legend, category names) in reading order; tick values
        (lines of numbers only) are left out: they name no topic and cost the text embedder tokens."""
        ordered = sorted(self.inside, key=lambda i: (-round(lines[i].rect[3] / 4), lines[i].rect[0]))
        texts = (" ".join(lines[i].text.split()) for i in ordered)
        return " ".join(text for text in texts if any(c.isalpha() for c in text))


@dataclass
class PageFigures:
    figures: list[Figure]
    lines: list[TextLine]
    captions: list[Caption]
    grids: list[Rect]
    """Regions made of ruled lines only: where a table may be."""
    view: View
    scanned_all: bool = True


Graphic = tuple[Rect, int, int]
"""A drawing object: (bounds, page object type, how many drawing operations it holds: a form XObject's parts)."""


def graphics(page: Any, limit: int) -> tuple[list[Graphic], bool]:
    """The page's drawing objects, at most `limit` of them; and whether that was all of them. A form XObject
    (a placed PDF, a LaTeX figure, a whole page wrapped by an exporter, a marker) is walked one level down, its
    parts placed by its matrix, so what it holds is clustered like anything drawn on the page. (PDFium's C API
    directly: pypdfium2's object wrappers cost more than the scan itself on a page of thousands of paths.)"""
    import ctypes

    import pypdfium2.raw as pdfium_c

    left, bottom, right, top = page.get_cropbox()
    page_w, page_h = right - left, top - bottom
    found: list[Graphic] = []
    x0, y0, x1, y1 = (ctypes.c_float() for _ in range(4))
    bounds = (ctypes.byref(x0), ctypes.byref(y0), ctypes.byref(x1), ctypes.byref(y1))
    matrix = pdfium_c.FS_MATRIX()
    seen = 0

    def place(obj: Any, form: tuple[float, ...] | None) -> None:
        kind = pdfium_c.FPDFPageObj_GetType(obj)
        if kind == _TEXT or not pdfium_c.FPDFPageObj_GetBounds(obj, *bounds):
            return  # text is read from the text page; an object without bounds draws nothing we can place
        rect = (x0.value, y0.value, x1.value, y1.value)
        if form is not None:
            rect = _transform(rect, form)
        a, b, c, d = max(rect[0], left), max(rect[1], bottom), min(rect[2], right), min(rect[3], top)
        w, h = c - a, d - b
        if w < 0 or h < 0 or (w < 0.5 and h < 0.5):
            return  # off the page, or a speck
        if w >= 0.85 * page_w and h >= 0.85 * page_h:
            return  # the page's background or frame, or a scan: the page image is that already
        found.append(((a, b, c, d), kind, 1))

    for i in range(pdfium_c.FPDFPage_CountObjects(page.raw)):
        obj = pdfium_c.FPDFPage_GetObject(page.raw, i)
        seen += 1
        if seen > limit:
            return found, False
        if pdfium_c.FPDFPageObj_GetType(obj) != _FORM:
            place(obj, None)
            continue
        if not pdfium_c.FPDFPageObj_GetMatrix(obj, ctypes.byref(matrix)):
            continue
        form = (matrix.a, matrix.b, matrix.c, matrix.d, matrix.e, matrix.f)
        for j in range(pdfium_c.FPDFFormObj_CountObjects(obj)):
            seen += 1
            if seen > limit:
                return found, False
            place(pdfium_c.FPDFFormObj_GetObject(obj, j), form)
    return found, True


def _transform(rect: Rect, m: tuple[float, ...]) -> Rect:
    """The bounds of `rect` mapped by the PDF matrix m = (a, b, c, d, e, f)."""
    a, b, c, d, e, f = m
    xs, ys = [], []
    for x, y in ((rect[0], rect[1]), (rect[0], rect[3]), (rect[2], rect[1]), (rect[2], rect[3])):
        xs.append(a * x + c * y + e)
        ys.append(b * x + d * y + f)
    return (min(xs), min(ys), max(xs), max(ys))


def find_figures(page: Any, textpage: Any, limit: int) -> PageFigures:
    """Figures of one page with their text and captions (in view space)."""
    runs = [textpage.get_rect(i) for i in range(min(textpage.count_rects(), limit))]
    view = View.of_page(page.get_cropbox(), page.get_rotation(), runs)
    lines = text_lines(textpage, runs, view)
    boxes, scanned_all = graphics(page, limit)
    captions = find_captions(lines)
    in_caption = {i for c in captions for i in c.lines}
    space = (0, 0, view.width, view.height)
    figures, grids = cluster([(view.of_user(rect), kind, n) for rect, kind, n in boxes], space)
    attach_text(figures, lines, in_caption)
    return PageFigures(figures, lines, captions, grids, view, scanned_all)


def cluster(boxes: Sequence[Graphic], cropbox: Sequence[float]) -> tuple[list[Figure], list[Rect]]:
    """Connected groups of drawing objects (closer than MERGE_GAP), as figures; and the groups made only of thin
    lines (rules, underlines, table grids), which are not figures but may be tables."""
    if not boxes:
        return [], []
    left, bottom, right, top = cropbox
    cell = max(1.0, max(right - left, top - bottom) / 1200)  # a grid of at most 1200 cells a side
    cols, rows = int((right - left) / cell) + 2, int((top - bottom) / cell) + 2
    grid = np.zeros((rows, cols), dtype=bool)
    pad = MERGE_GAP / 2
    cells = []
    for (x0, y0, x1, y1), _, _ in boxes:
        c0, c1 = int((x0 - pad - left) / cell), int((x1 + pad - left) / cell) + 1
        r0, r1 = int((y0 - pad - bottom) / cell), int((y1 + pad - bottom) / cell) + 1
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, cols), min(r1, rows)
        grid[r0:r1, c0:c1] = True
        cells.append((r0, c0))
    from scipy import ndimage

    labels, _ = ndimage.label(grid)
    by_label: dict[int, list[int]] = {}
    for index, (r, c) in enumerate(cells):
        by_label.setdefault(int(labels[r, c]), []).append(index)
    groups = _merge_overlapping([(union(boxes[i][0] for i in m), m) for m in by_label.values()])
    figures: list[Figure] = []
    grids: list[Rect] = []
    small: list[Figure] = []
    for rect, members in groups:
        thin = all(min(box_width(boxes[i][0]), box_height(boxes[i][0])) < THIN for i in members)
        if thin:
            if len(members) >= 4 and box_width(rect) >= MIN_FIGURE_SIDE and box_height(rect) >= MIN_FIGURE_SIDE / 2:
                grids.append(rect)
            continue
        images = sum(1 for i in members if boxes[i][1] == _IMAGE)
        parts = sum(boxes[i][2] for i in members)
        figure = Figure(rect=rect, graphics=rect, objects=parts, images=images)
        (figures if _looks_like_figure(figure) else small).append(figure)
    _absorb_small(figures, small)
    return figures, grids


def _merge_overlapping(groups: list[tuple[Rect, list[int]]]) -> list[tuple[Rect, list[int]]]:
    """Groups whose boxes overlap are one drawing (a frameless chart: its L of axes and its lines apart), except a
    single box around others: a frame, dropped."""
    merged = True
    while merged:
        merged = False
        groups.sort(key=lambda g: g[0][0])
        out: list[tuple[Rect, list[int]]] = []
        for rect, members in groups:
            for k, (other, other_members) in enumerate(out):
                if box_gap(rect, other) > 0 or min(rect[3], other[3]) - max(rect[1], other[1]) <= 0:
                    continue
                if len(members) == 1 and covers(rect, other, 0.99):
                    break  # a frame around another drawing
                if len(other_members) == 1 and covers(other, rect, 0.99):
                    out[k] = (rect, members)
                    merged = True
                    break
                out[k] = (union([rect, other]), other_members + members)
                merged = True
                break
            else:
                out.append((rect, members))
        groups = out
    return groups


def _absorb_small(figures: list[Figure], small: list[Figure], reach: float = 40.0) -> None:
    """Small drawings beside a figure (a legend's swatches, an arrow, a marker) are part of it."""
    for part in small:
        if box_width(part.rect) > MIN_FIGURE_SIDE or box_height(part.rect) > MIN_FIGURE_SIDE:
            continue
        best, best_gap = None, reach
        for figure in figures:
            g = figure.graphics
            beside = min(g[3], part.rect[3]) - max(g[1], part.rect[1]) > 0 or overlaps_x(g, part.rect)
            gap = box_gap(part.rect, g)
            if beside and gap <= best_gap:
                best, best_gap = figure, gap
        if best is not None:
            best.graphics = best.rect = union([best.graphics, part.rect])
            best.objects += part.objects


def _looks_like_figure(figure: Figure) -> bool:
    if box_width(figure.graphics) < MIN_FIGURE_SIDE or box_height(figure.graphics) < MIN_FIGURE_SIDE:
        return False
    return figure.images > 0 or figure.objects >= 3  # not one plain box (a frame around text)


def attach_text(figures: list[Figure], lines: Sequence[TextLine], excluded: set[int]) -> None:
    """Give each figure the text lines in and around it that are not captions or body text (nearest figure wins)."""
    if not figures:
        return
    narrowest = min(box_width(f.graphics) for f in figures)
    body = _body_lines(lines, 0.6 * narrowest)
    free = [i for i in range(len(lines)) if i not in excluded and i not in body]
    for _ in range(3):  # tick labels first, then the axis title beside them, then a title above...
        claimed = False
        for i in list(free):
            rect = lines[i].rect
            best, best_gap = None, TEXT_MARGIN
            for figure in figures:
                gap = box_gap(rect, figure.rect)
                if gap <= best_gap and _fits(rect, figure):
                    best, best_gap = figure, gap
            if best is not None:
                best.inside.append(i)
                best.rect = union([best.rect, rect])
                free.remove(i)
                claimed = True
        if not claimed:
            break
    for figure in figures:  # a title centred over a figure, set further off (a pie's title sits above its box)
        g, top = figure.graphics, figure.rect[3]
        titles = [
            i
            for i in free
            if 0 <= lines[i].rect[1] - top <= 3 * TEXT_MARGIN
            and abs((lines[i].rect[0] + lines[i].rect[2]) - (g[0] + g[2])) < 0.2 * box_width(g) + 8
            and box_width(lines[i].rect) <= 2.5 * box_width(g)
        ]
        if titles:
            title = min(titles, key=lambda i: lines[i].rect[1])
            between = [
                j for j in excluded if overlaps_x(lines[j].rect, g) and top <= lines[j].rect[1] <= lines[title].rect[1]
            ]
            if not between:  # not across a caption
                figure.inside.append(title)
                figure.rect = union([figure.rect, lines[title].rect])
                free.remove(title)


def _body_lines(lines: Sequence[TextLine], wide: float) -> set[int]:
    """Lines of paragraphs: runs of lines set close under each other, one of them wider than `wide` (a legend's
    or a tick column's lines are short; an axis title is alone)."""
    order = sorted(range(len(lines)), key=lambda i: (-lines[i].rect[3], lines[i].rect[0]))
    parent = list(range(len(lines)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k, i in enumerate(order):
        x0, y0, x1, y1 = lines[i].rect
        for j in order[k + 1 : k + 30]:
            jx0, _, jx1, jy1 = lines[j].rect
            gap = y0 - jy1
            if gap > 0.8 * (y1 - y0):
                break
            if gap >= -0.3 * (y1 - y0) and min(x1, jx1) - max(x0, jx0) > 0:
                parent[root(j)] = root(i)
    blocks: dict[int, list[int]] = {}
    for i in range(len(lines)):
        blocks.setdefault(root(i), []).append(i)
    return {
        i
        for block in blocks.values()
        if len(block) >= 2 and max(box_width(lines[i].rect) for i in block) > wide
        for i in block
    }


def _fits(rect: Rect, figure: Figure) -> bool:
    """A line of a figure is no wider than the figure (body text runs across the column) and does not reach far
    out of it sideways."""
    width = box_width(figure.graphics)
    if box_width(rect) > 1.15 * width + TEXT_MARGIN:
        return False
    return rect[0] >= figure.graphics[0] - 0.5 * width and rect[2] <= figure.graphics[2] + 0.5 * width
