"""Boxes on a PDF page: the view space figures and captions are found in, and the few operations on boxes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Rect = tuple[float, float, float, float]
"""(left, bottom, right, top) in points: view space (the page as displayed, y up), unless said otherwise."""


@dataclass(frozen=True)
class View:
    """The page turned so that its text reads left to right, with PDF's y axis pointing up: the space figures are
    found in. That is the page as displayed (its /Rotate applied) unless the text is set upright in the page's own
    space and /Rotate shows it sideways (a scanner's or a viewer's turn): then the unturned page. Boxes go out as
    `display` boxes, on the page as displayed."""

    cropbox: tuple[float, ...]
    rotation: int
    """The page's /Rotate: how it is displayed."""
    reading: int
    """The turn that makes its text read left to right: `rotation`, or 0."""

    @classmethod
    def of_page(cls, cropbox: Sequence[float], rotation: int, text_rects: Sequence[Sequence[float]]) -> View:
        """The view of a page whose text runs (in user space) have the given rects."""
        rotation = rotation % 360
        if rotation in (90, 270):
            runs = [r for r in text_rects if max(r[2] - r[0], r[3] - r[1]) > 20]
            across = sum(1 for r in runs if r[2] - r[0] > r[3] - r[1])
            if runs and across > len(runs) / 2:  # horizontal in user space: it reads upright unturned
                return cls(tuple(cropbox), rotation, 0)
        return cls(tuple(cropbox), rotation, rotation)

    @property
    def height(self) -> float:
        left, bottom, right, top = self.cropbox
        return (right - left) if self.reading in (90, 270) else (top - bottom)

    @property
    def width(self) -> float:
        left, bottom, right, top = self.cropbox
        return (top - bottom) if self.reading in (90, 270) else (right - left)

    def of_user(self, rect: Sequence[float]) -> Rect:
        x0, top, x1, bottom = display_box(rect, self.cropbox, self.reading)
        return (x0, self.height - bottom, x1, self.height - top)

    def to_user(self, rect: Rect) -> Rect:
        return user_rect((rect[0], self.height - rect[3], rect[2], self.height - rect[1]), self.cropbox, self.reading)

    def display(self, rect: Rect) -> tuple[float, float, float, float]:
        """(x0, top, x1, bottom) from the top-left of the displayed page: what items carry."""
        x0, top, x1, bottom = display_box(self.to_user(rect), self.cropbox, self.rotation)
        return (round(x0, 2), round(top, 2), round(x1, 2), round(bottom, 2))

    def of_display(self, box: Sequence[float]) -> Rect:
        return self.of_user(user_rect(box, self.cropbox, self.rotation))


def display_box(rect: Sequence[float], cropbox: Sequence[float], rotation: int) -> tuple[float, float, float, float]:
    """A user-space rect as (x0, top, x1, bottom) on the page as displayed: origin top-left, /Rotate applied."""
    left, bottom, right, top = cropbox
    corners = [(rect[0], rect[1]), (rect[2], rect[3])]
    points = []
    for x, y in corners:
        if rotation == 90:
            points.append((y - bottom, x - left))
        elif rotation == 180:
            points.append((right - x, y - bottom))
        elif rotation == 270:
            points.append((top - y, right - x))
        else:
            points.append((x - left, top - y))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (round(min(xs), 2), round(min(ys), 2), round(max(xs), 2), round(max(ys), 2))


def user_rect(box: Sequence[float], cropbox: Sequence[float], rotation: int) -> Rect:
    """The inverse of `display_box`: a displayed (x0, top, x1, bottom) box back in PDF user space."""
    left, bottom, right, top = cropbox
    points = []
    for x, y in ((box[0], box[1]), (box[2], box[3])):
        if rotation == 90:
            points.append((y + left, x + bottom))
        elif rotation == 180:
            points.append((right - x, y + bottom))
        elif rotation == 270:
            points.append((right - y, top - x))
        else:
            points.append((x + left, top - y))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def covers(outer: Rect, inner: Rect, share: float = 0.6) -> bool:
    """At least `share` of `inner`'s area lies inside `outer`."""
    w = min(outer[2], inner[2]) - max(outer[0], inner[0])
    h = min(outer[3], inner[3]) - max(outer[1], inner[1])
    area = box_width(inner) * box_height(inner)
    return w > 0 and h > 0 and area > 0 and w * h >= share * area


def union(rects: Iterable[Rect]) -> Rect:
    rects = list(rects)
    return (
        min(r[0] for r in rects),
        min(r[1] for r in rects),
        max(r[2] for r in rects),
        max(r[3] for r in rects),
    )


def iou(a: Rect, b: Rect) -> float:
    inter_w = min(a[2], b[2]) - max(a[0], b[0])
    inter_h = min(a[3], b[3]) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    return inter / (box_width(a) * box_height(a) + box_width(b) * box_height(b) - inter)


def box_gap(a: Rect, b: Rect) -> float:
    dx = max(b[0] - a[2], a[0] - b[2], 0.0)
    dy = max(b[1] - a[3], a[1] - b[3], 0.0)
    return max(dx, dy)


def overlaps_x(a: Rect, b: Rect) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > 0


def box_width(r: Rect) -> float:
    return r[2] - r[0]


def box_height(r: Rect) -> float:
    return r[3] - r[1]
