"""Figure and table labels ("Figure 3:", "Fig. 2.1", "Table 1", "Abbildung 4") and the sentences that refer to them.

A caption is a paragraph that starts with a label; a reference is a body sentence that names one ("as shown in
Figure 15.1", "see Fig. 3"). Both are found by the same words, in English and other common languages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    r"(?P<sep>\s*[:.\-–—|)]|\s+|$)",
)
_TABLE = re.compile(rf"^(?:{TABLE_WORDS}|表)", re.IGNORECASE)
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
    strong = bool(sep.strip()) or not rest.strip() or not rest[:1].islower()  # not "Figure 3 shows ..."
    label = " ".join(match.group("label").split())
    return Label(text=label, number=number, table=bool(_TABLE.match(word)), strong=strong)


def references(text: str, label: Label, exclude: str = "", limit: int = 600) -> str:
    """Sentences of `text` that refer to the figure or table `label` ('as shown in Figure 3'), at most `limit`
    characters of them; `exclude` (its own caption) is not a reference."""
    pattern = _mention(label)
    found: list[str] = []
    used = 0
    own = " ".join(exclude.split())
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        if not pattern.search(sentence) or (own and (sentence in own or own.startswith(sentence[:60]))):
            continue
        if caption_label(sentence) is not None and caption_label(sentence) == label:
            continue  # another copy of a caption
        if used + len(sentence) > limit:
            break
        found.append(sentence)
        used += len(sentence) + 1
    return " ".join(found)


def _mention(label: Label) -> re.Pattern[str]:
    number = re.escape(label.number)
    words = TABLE_WORDS if label.table else FIGURE_WORDS
    return re.compile(rf"(?<!\w)(?:{words}|{CJK_WORDS})\s*{number}(?![\w.\-]\d)(?!\d)", re.IGNORECASE)
