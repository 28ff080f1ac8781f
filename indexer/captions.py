"""Figure and table labels ("Figure 3:", "Fig. 2.1", "Table 1", "Abbildung 4"), the captions they start on a PDF
page, and the sentences that refer to them.

A caption is a paragraph that starts with a label, just below or above its figure; a reference is a body sentence
that names one ("as shown in Figure 15.1", "see Fig. 3"). Both are found by the same words, in English and other
common languages. A page's text comes as lines (PDFium's runs, joined again where a font change cut them); a
caption's paragraph goes on while each line is full, the way a typesetter fills a measure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mmrag.indexer.geometry import Rect, View, box_width, overlaps_x, union

FIGURE_WORDS = (
    "Figure|Fig\\.?|Chart|Exhibit|Graph|Diagram|Plot|Illustration|Plate|Map"
    "|Abbildung|Abb\\.?|Grafik|Diagramm|Schaubild"  # German
    "|Graphique|Schéma|Illustration"  # French
    "|Figura|Gráfico|Grafico|Gráfica|Ilustración|Ilustração"  # Spanish, Italian, Portuguese
    "|Figuur|Afbeelding|Grafiek"  # Dutch
    "|Рисунок|Рис\\.?|Диаграмма"  # Russian
    "|Rysunek|Rys\\.?|Wykres"  # Polish
    "|Şekil|Kuva|Figur|Bild"  # Turkish, Finnish, Scandinavian
)
TABLE_WORDS = "Table|Tab\\.?|Tabelle|Tableau|Tabla|Cuadro|Tabella|Tabela|Tabel|Таблица|Tabulka|Taulukko|Tablo"
CJK_WORDS = "图|圖|表|図"

_NUMBER = r"(?:\d+(?:[.\-–]\d+)*[A-Za-z]?|[IVXLC]+(?![a-z]))"
LABEL = re.compile(
    rf"^\s*(?P<label>(?P<word>{FIGURE_WORDS}|{TABLE_WORDS})\s*(?P<number>{_NUMBER})"
    rf"|(?P<cjk>{CJK_WORDS})\s*(?P<cjk_number>\d+(?:[.\-]\d+)*))"
    r"(?!\d)(?P<sep>\s*(?:[:\-–—|)]|\.(?!\d))|\s+|$|(?=[,;]))",
)
_TABLE = re.compile(rf"^(?:{TABLE_WORDS}|表)", re.IGNORECASE)
_ABBREVIATION = re.compile(r"(?:\b(?:Fig|Figs|Abb|Tab|Rys|Рис|No|Nr|vs|e\.g|i\.e|cf|approx|ca)\.)$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+(?=[A-Z0-9\"'(\[])")


@dataclass(frozen=True)
class Label:
    text: str
    """As printed, without its separator: 'Figure 3', 'Fig. 2.1', 'Table 1'."""
    number: str
    table: bool
    """A table's label rather than a figure's."""
    strong: bool
    """Followed by a separator (':', '.', a dash) or alone on its line: a caption, not a sentence that starts
    with 'Figure 3 shows'."""


def caption_label(text: str) -> Label | None:
    """The label a caption paragraph starts with, if it starts with one."""
    match = LABEL.match(text)
    if match is None:
        return None
    word = match.group("word") or match.group("cjk") or ""
    number = match.group("number") or match.group("cjk_number") or ""
    rest = text[match.end() :]
    sep = match.group("sep")
    first = rest.strip()[:1]
    strong = bool(sep.strip()) or not first or not (first.islower() or first in ",;")  # not "Figure 3 shows"
    label = " ".join(match.group("label").split())
    return Label(text=label, number=number, table=bool(_TABLE.match(word)), strong=strong)


def caption_of(text: str, table: bool) -> Label | None:
    """The label of `text` when it is a table's (else a figure's) caption: a strong label of that kind."""
    label = caption_label(text)
    return label if label is not None and label.strong and label.table == table else None


class References:
    """The body sentences of a document that refer to figures and tables ('as shown in Figure 3'), indexed once by
    what they name, so a document of a thousand figures is read once, not once per figure."""

    def __init__(self, text: str) -> None:
        self.sentences = sentences(text)
        self.by_label: dict[tuple[bool, str], list[int]] = {}
        for i, sentence in enumerate(self.sentences):
            start = caption_label(sentence)
            if start is not None and start.strong:
                continue  # a caption, not a sentence about it
            for match in _MENTION.finditer(sentence):
                key = (bool(_TABLE.match(match.group("word"))), match.group("number").lower())
                if i not in self.by_label.setdefault(key, []):
                    self.by_label[key].append(i)

    def about(self, label: Label, exclude: str = "", limit: int = 400) -> str:
        """The sentences that refer to `label`, at most `limit` characters of them; `exclude` (its own caption)
        is not a reference."""
        found: list[str] = []
        used = 0
        own = " ".join(exclude.split())
        for i in self.by_label.get((label.table, label.number.lower()), []):
            sentence = self.sentences[i]
            if sentence in found or (own and sentence[:80] in own):
                continue
            if used + len(sentence) > limit:
                break
            found.append(sentence)
            used += len(sentence) + 1
        return " ".join(found)


def sentences(text: str, longest: int = 400) -> list[str]:
    """Body sentences of extracted text: lines are joined into paragraphs (a short line, one ending a sentence, or
    one before a label ends a paragraph), paragraphs split at sentence ends; longer runs than `longest` are not
    sentences (a table, a list of numbers)."""
    paragraphs: list[str] = []
    current: list[str] = []
    for raw in text.splitlines():
        line = " ".join(raw.split())
        start = caption_label(line)
        if current and start is not None and start.strong:
            paragraphs.append(" ".join(current))
            current = []
        if line:
            current.append(line)
        if not line or len(line) < 25 or line[-1] in ".!?:。":
            if current:
                paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    out = []
    for paragraph in paragraphs:
        parts: list[str] = []
        for piece in _SENTENCE_END.split(paragraph):
            if parts and _ABBREVIATION.search(parts[-1]):
                parts[-1] += " " + piece  # "see Fig. 3": not the end of a sentence
            else:
                parts.append(piece)
        out += [s for s in parts if 20 <= len(s) <= longest]
    return out


_MENTION = re.compile(
    rf"(?<!\w)(?P<word>{FIGURE_WORDS}|{TABLE_WORDS}|{CJK_WORDS})\s*(?P<number>{_NUMBER})(?![\w.\-]\d)(?!\d)",
    re.IGNORECASE,
)


# --- captions on a PDF page ---------------------------------------------------------------------------------------

CAPTION_GAP = 54.0
"""A caption starts at most this far below or above its figure."""


@dataclass(frozen=True)
class TextLine:
    rect: Rect
    text: str
    order: int = 0
    """Where it comes in the page's content stream (reading order, for most producers)."""


@dataclass
class Caption:
    lines: list[int]
    """Indices of its text lines, in reading order."""
    rect: Rect
    text: str
    label: Label | None


def text_lines(textpage: Any, runs: Sequence[Sequence[float]], view: View) -> list[TextLine]:
    """The page's text as lines in view space, from PDFium's runs (their user-space rects). PDFium cuts a line
    where the font changes (a bold label, a dash from another font): pieces on the same line closer than its height
    are joined again."""
    pieces = []
    for i, rect in enumerate(runs):
        text = textpage.get_text_bounded(*rect).strip()
        if text:
            pieces.append((view.of_user(rect), text, i))
    pieces.sort(key=lambda piece: (piece[0][0], -piece[0][3]))
    lines: list[list[Any]] = []  # [rect, text, order] of the lines so far, in the order of their left edge
    for rect, text, order in pieces:
        height = rect[3] - rect[1]
        for line in reversed(lines[-50:]):
            (x0, y0, x1, y1), _, first = line
            overlap = min(y1, rect[3]) - max(y0, rect[1])
            gap = rect[0] - x1
            if overlap >= 0.5 * min(height, y1 - y0) and -2 <= gap <= max(height, y1 - y0):
                line[0] = (x0, min(y0, rect[1]), max(x1, rect[2]), max(y1, rect[3]))
                line[1] = None  # joined: read again as one run, PDFium placing the spaces
                line[2] = min(first, order)
                break
        else:
            lines.append([rect, text, order])
    ordered = sorted(lines, key=lambda line: (-line[0][3], line[0][0]))
    out = []
    for rect, text, order in ordered:
        text = text if text is not None else " ".join(textpage.get_text_bounded(*view.to_user(rect)).split())
        out.append(TextLine(rect, text, order))
    return out


def find_captions(lines: Sequence[TextLine]) -> list[Caption]:
    """Paragraphs that start with a figure or table label: the label's line and the lines that continue it."""
    captions = []
    used: set[int] = set()
    order = sorted(range(len(lines)), key=lambda i: (-lines[i].rect[3], lines[i].rect[0]))
    position = {line: k for k, line in enumerate(order)}
    for i in order:
        if i in used:
            continue
        label = caption_label(lines[i].text)
        if label is None or not label.strong:
            continue  # "Figure 3 shows ..." is a sentence about a figure, not its caption
        members = [i]
        for _ in range(8):  # a caption is a few lines at most
            widest = max(box_width(lines[m].rect) for m in members)
            following = _next_line(lines, members[-1], order, position, used | set(members), widest)
            if following is None or caption_label(lines[following].text) is not None:
                break
            members.append(following)
        used.update(members)
        text = " ".join(" ".join(lines[m].text.split()) for m in members)
        captions.append(Caption(members, union(lines[m].rect for m in members), " ".join(text.split()), label))
    return captions


def _next_line(
    lines: Sequence[TextLine],
    current: int,
    order: list[int],
    position: dict[int, int],
    taken: set[int],
    widest: float,
) -> int | None:
    """The line that continues `current`'s paragraph (whose widest line so far is `widest`): just below it, aligned
    with it, when `current` is full: the next line's first word would not have fitted at its end."""
    x0, y0, x1, _ = lines[current].rect
    height = lines[current].rect[3] - y0
    best = None
    for k in range(position[current] + 1, min(position[current] + 40, len(order))):
        j = order[k]
        if j in taken:
            continue
        jx0, _, jx1, jy1 = lines[j].rect
        gap = y0 - jy1
        if gap > 0.8 * height:
            break
        if gap < -0.3 * height or min(x1, jx1) - max(x0, jx0) <= 0:
            continue  # the same line (another column) or not under it
        if abs(jx0 - x0) > 3 and abs((jx0 + jx1) - (x0 + x1)) > 6:
            return None  # neither aligned on its left nor centred under it: not the same paragraph
        best = j
        break
    if best is None:
        return None
    following = lines[best]
    first_word = following.text.split()[0] if following.text.split() else ""
    first_width = box_width(following.rect) * (len(first_word) + 1) / max(len(following.text), 1)
    room = max(widest, box_width(following.rect))
    if box_width(lines[current].rect) + first_width < 0.98 * room:
        return None  # it ended short of the measure on purpose: the next line starts another paragraph
    return best


def match_captions(figures: Sequence[Rect], captions: Sequence[Caption]) -> dict[int, Caption]:
    """The free figure captions just below or above the figures at these boxes, by figure index. A page sets its
    captions on one side, so both readings (captions below, captions above) are tried, nearest first, and the one
    that captions more figures, then with less distance in all, wins."""
    pairs = []
    for f, figure in enumerate(figures):
        for c, caption in enumerate(captions):
            if caption.label is None or caption.label.table:
                continue
            found = _verticalgap(figure, caption.rect)
            if found is not None and (caption.label.strong or found[0] <= 24):
                pairs.append((found[0], found[1], f, c))
    best: dict[int, int] = {}
    best_score = (0, 0.0)
    for side in ("below", "above"):
        chosen: dict[int, int] = {}
        total = 0.0
        for gap, _, f, c in sorted(pairs, key=lambda p: (p[1] != side, p[0])):
            if f in chosen or c in chosen.values():
                continue
            chosen[f] = c
            total += gap
        score = (len(chosen), -total)
        if score > best_score:
            best, best_score = chosen, score
    return {f: captions[c] for f, c in best.items()}


def _nearest_caption(rect: Rect, captions: Sequence[Caption], taken: set[int], table: bool) -> int:
    best, best_gap = -1, float("inf")
    for c, caption in enumerate(captions):
        if c in taken or caption.label is None or caption.label.table != table:
            continue
        found = _verticalgap(rect, caption.rect)
        if found is not None and found[0] < best_gap:
            best, best_gap = c, found[0]
    return best


def _verticalgap(figure: Rect, caption: Rect) -> tuple[float, str] | None:
    """How far the caption is below or above the figure, and which, when it is there and overlaps it sideways."""
    overlap = min(figure[2], caption[2]) - max(figure[0], caption[0])
    if overlap < 0.3 * min(box_width(figure), box_width(caption)):
        return None
    below = figure[1] - caption[3]
    above = caption[1] - figure[3]
    if -4 <= below <= CAPTION_GAP:
        return max(below, 0.0), "below"
    if -4 <= above <= CAPTION_GAP:
        return max(above, 0.0), "above"
    return None


def nearby_text(figure: Rect, lines: Sequence[TextLine], taken: set[int], limit: int = 300) -> str:
    """For a figure (its box) without a caption: the free text lines just below it (else just above), up to `limit`
    characters."""
    below = [
        i
        for i, line in enumerate(lines)
        if i not in taken and 0 <= figure[1] - line.rect[3] <= 36 and overlaps_x(figure, line.rect)
    ]
    above = [
        i
        for i, line in enumerate(lines)
        if i not in taken and 0 <= line.rect[1] - figure[3] <= 36 and overlaps_x(figure, line.rect)
    ]
    chosen = sorted(below or above, key=lambda i: (-lines[i].rect[3], lines[i].rect[0]))
    return " ".join(" ".join(lines[i].text.split()) for i in chosen)[:limit]


def table_captions(tables: Sequence[Rect], captions: Sequence[Caption]) -> list[Caption | None]:
    """Each table's caption: the nearest free paragraph with a table label just above or below it."""
    taken: set[int] = set()
    out: list[Caption | None] = []
    for rect in tables:
        index = _nearest_caption(rect, captions, taken, table=True)
        taken.add(index)
        out.append(captions[index] if index >= 0 else None)
    return out
